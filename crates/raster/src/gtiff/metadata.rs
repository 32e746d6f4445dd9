//! GDAL's private tags: `GDAL_NODATA` (ASCII number) and `GDAL_METADATA` (XML items).
//!
//! Band names are GDAL band descriptions: `<Item name="DESCRIPTION" sample="i"
//! role="description">`. amun also records a band's [`BandKind`] as an item
//! `AMUN_KIND` so that categorical bands stay categorical through a file.

use crate::raster::BandKind;

/// What the metadata block says.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Metadata {
    /// Band descriptions by 0-based band.
    pub names: Vec<Option<String>>,
    /// Band kinds by 0-based band.
    pub kinds: Vec<BandKind>,
    /// Dataset-level items `(name, value)`.
    pub items: Vec<(String, String)>,
}

/// Parses `GDAL_NODATA`; `None` if absent or not a number.
pub(crate) fn parse_nodata(s: Option<&str>) -> Option<f64> {
    let s = s?.trim().trim_end_matches('\0');
    s.parse::<f64>().ok()
}

/// Formats a nodata value as GDAL does (`nan` for NaN, shortest round-trip decimal).
pub(crate) fn format_nodata(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else {
        format!("{v}")
    }
}

/// Parses a `GDAL_METADATA` block for `bands` bands. Unparseable XML yields no metadata
/// (band names then default), as GDAL itself only warns.
pub(crate) fn parse(xml: Option<&str>, bands: usize) -> Metadata {
    let mut md = Metadata {
        names: vec![None; bands],
        kinds: vec![BandKind::Continuous; bands],
        items: Vec::new(),
    };
    let Some(xml) = xml else { return md };
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return md;
    };
    for item in doc.descendants().filter(|n| n.has_tag_name("Item")) {
        let Some(name) = item.attribute("name") else {
            continue;
        };
        let value = item.text().unwrap_or("").to_string();
        match item.attribute("sample").map(str::parse::<usize>) {
            Some(Ok(band)) if band < bands => {
                if name == "DESCRIPTION" && !value.is_empty() {
                    md.names[band] = Some(value);
                } else if name == "AMUN_KIND" && value == "categorical" {
                    md.kinds[band] = BandKind::Categorical;
                }
            }
            Some(_) => {}
            None => md.items.push((name.to_string(), value)),
        }
    }
    md
}

/// The name of 0-based band `b`: its description, else `band_{b+1}`; a description already
/// `taken` by an earlier band gets the suffix `_{b+1}`, and if that is taken too the default.
pub(crate) fn band_name(
    description: Option<&str>,
    b: usize,
    taken: impl Fn(&str) -> bool,
) -> String {
    let default = format!("band_{}", b + 1);
    let mut name = description.map_or_else(|| default.clone(), str::to_string);
    if taken(&name) {
        name = format!("{name}_{}", b + 1);
    }
    if taken(&name) {
        name = default;
    }
    name
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A `GDAL_METADATA` block naming the bands and marking categorical ones.
pub(crate) fn format(names: &[&str], kinds: &[BandKind]) -> String {
    let mut xml = String::from("<GDALMetadata>\n");
    for (i, name) in names.iter().enumerate() {
        if !name.is_empty() {
            xml.push_str(&format!(
                "  <Item name=\"DESCRIPTION\" sample=\"{i}\" role=\"description\">{}</Item>\n",
                escape(name)
            ));
        }
        if kinds.get(i) == Some(&BandKind::Categorical) {
            xml.push_str(&format!(
                "  <Item name=\"AMUN_KIND\" sample=\"{i}\">categorical</Item>\n"
            ));
        }
    }
    xml.push_str("</GDALMetadata>");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_kinds_round_trip() {
        let xml = format(
            &["ndvi", "land <cover> & co"],
            &[BandKind::Continuous, BandKind::Categorical],
        );
        let md = parse(Some(&xml), 2);
        assert_eq!(
            md.names,
            [Some("ndvi".into()), Some("land <cover> & co".into())]
        );
        assert_eq!(md.kinds, [BandKind::Continuous, BandKind::Categorical]);
    }

    #[test]
    fn gdal_written_block_is_understood() {
        // As written by `gdal_translate -mo AREA=x` on a file whose band 1 has a description.
        let xml = r#"<GDALMetadata>
  <Item name="AREA">x</Item>
  <Item name="DESCRIPTION" sample="0" role="description">elevation</Item>
</GDALMetadata>"#;
        let md = parse(Some(xml), 1);
        assert_eq!(md.names, [Some("elevation".into())]);
        assert_eq!(md.items, [("AREA".to_string(), "x".to_string())]);
        assert_eq!(parse(Some("<broken"), 1).names, [None]);
    }

    #[test]
    fn nodata_parsing() {
        assert_eq!(parse_nodata(Some("-9999")), Some(-9999.0));
        assert!(parse_nodata(Some("nan")).is_some_and(f64::is_nan));
        assert_eq!(parse_nodata(Some("junk")), None);
        assert_eq!(format_nodata(-3.5), "-3.5");
    }
}
