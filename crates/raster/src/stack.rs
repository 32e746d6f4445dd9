//! Named bands on one grid.

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::raster::Raster;

/// Named bands that share one [`Grid`], in insertion order (e.g. `ndvi`, `landcover`,
/// `reflectance`, `mndwi`, `ndbi`, `slope`, `aspect`).
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    grid: Grid,
    names: Vec<String>,
    bands: Vec<Raster>,
}

impl Stack {
    /// An empty stack on `grid`.
    pub fn new(grid: Grid) -> Self {
        Self {
            grid,
            names: Vec::new(),
            bands: Vec::new(),
        }
    }

    /// Adds a band.
    ///
    /// # Errors
    /// [`Error::DuplicateBand`] if the name is taken; grid errors (see [`Grid::check_same`])
    /// if the raster is on another grid.
    pub fn push(&mut self, name: impl Into<String>, raster: Raster) -> Result<()> {
        let name = name.into();
        if self.names.contains(&name) {
            return Err(Error::DuplicateBand { name });
        }
        self.grid.check_same(raster.grid()).map_err(|e| match e {
            Error::GridMismatch { detail } => Error::GridMismatch {
                detail: format!("band `{name}`: {detail}"),
            },
            other => other,
        })?;
        self.names.push(name);
        self.bands.push(raster);
        Ok(())
    }

    /// Builder form of [`Stack::push`].
    ///
    /// # Errors
    /// As [`Stack::push`].
    pub fn with(mut self, name: impl Into<String>, raster: Raster) -> Result<Self> {
        self.push(name, raster)?;
        Ok(self)
    }

    /// The shared grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// Band names in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of bands.
    pub fn len(&self) -> usize {
        self.bands.len()
    }

    /// Whether the stack has no band.
    pub fn is_empty(&self) -> bool {
        self.bands.is_empty()
    }

    /// The band called `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Raster> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.bands[i])
    }

    /// The band called `name`.
    ///
    /// # Errors
    /// [`Error::BandNotFound`] listing the bands present.
    pub fn band(&self, name: &str) -> Result<&Raster> {
        self.get(name).ok_or_else(|| Error::BandNotFound {
            name: name.to_string(),
            available: self.names.join(", "),
        })
    }

    /// Removes and returns the band called `name`.
    ///
    /// # Errors
    /// [`Error::BandNotFound`].
    pub fn remove(&mut self, name: &str) -> Result<Raster> {
        let i = self
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| Error::BandNotFound {
                name: name.to_string(),
                available: self.names.join(", "),
            })?;
        self.names.remove(i);
        Ok(self.bands.remove(i))
    }

    /// `(name, band)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Raster)> {
        self.names.iter().map(String::as_str).zip(self.bands.iter())
    }

    /// The bands in order.
    pub fn bands(&self) -> &[Raster] {
        &self.bands
    }

    /// A stack of the named bands, in the order given.
    ///
    /// # Errors
    /// [`Error::BandNotFound`] for the first missing name.
    pub fn select<S: AsRef<str>>(&self, names: &[S]) -> Result<Stack> {
        let mut out = Stack::new(self.grid.clone());
        for n in names {
            out.push(n.as_ref(), self.band(n.as_ref())?.clone())?;
        }
        Ok(out)
    }

    /// The same window of every band (see [`Grid::window`]).
    ///
    /// # Errors
    /// [`Error::WindowOutOfBounds`].
    pub fn window(&self, col0: usize, row0: usize, width: usize, height: usize) -> Result<Stack> {
        let mut out = Stack::new(self.grid.window(col0, row0, width, height)?);
        for (n, b) in self.iter() {
            out.push(n, b.window(col0, row0, width, height)?)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_grids_and_lookup() {
        let g = Grid::geographic(0.0, 1.0, 0.1, 10, 10).unwrap();
        let mut s = Stack::new(g.clone());
        s.push("ndvi", Raster::filled(g.clone(), 0.5)).unwrap();
        s.push("slope", Raster::filled(g.clone(), 2.0)).unwrap();
        assert!(matches!(
            s.push("ndvi", Raster::filled(g.clone(), 0.0)),
            Err(Error::DuplicateBand { .. })
        ));
        let other = Grid::geographic(0.0, 1.0, 0.05, 20, 20).unwrap();
        let e = s.push("x", Raster::filled(other, 0.0)).unwrap_err();
        assert!(e.to_string().contains("band `x`"), "{e}");
        let e = s.band("ndbi").unwrap_err().to_string();
        assert!(e.contains("ndvi, slope"), "{e}");
        let sel = s.select(&["slope", "ndvi"]).unwrap();
        assert_eq!(sel.names(), ["slope", "ndvi"]);
        assert_eq!(s.window(1, 1, 3, 3).unwrap().grid().width(), 3);
    }
}
