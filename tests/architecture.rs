//! Keeps `docs/architecture.md` true: its two dependency lists (normal and dev-only edges
//! between the workspace's own packages) must equal what `cargo metadata` reports from the
//! `Cargo.toml` files. A difference fails with the edges that differ.
//!
//! Reference: `cargo metadata --format-version 1 --no-deps`, cargo's own reading of every
//! member's manifest (the same data `cargo tree` draws from).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// An edge `from → to` between two workspace packages.
type Edge = (String, String);

/// The packages and edges of one list.
#[derive(Debug, Default)]
struct Graph {
    packages: BTreeSet<String>,
    edges: BTreeSet<Edge>,
    /// The packages in the order the document lists them.
    order: Vec<String>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lies inside the workspace root")
        .to_path_buf()
}

/// The fenced block that follows the line `<!-- {marker} -->`: one line per package,
/// `name → dep, dep` (nothing after the arrow for none).
fn parse_list(text: &str, marker: &str) -> Result<Graph, String> {
    let tag = format!("<!-- {marker} -->");
    let mut lines = text.lines().skip_while(|l| l.trim() != tag);
    if lines.next().is_none() {
        return Err(format!("no `{tag}` line"));
    }
    let mut lines = lines.skip_while(|l| !l.trim_start().starts_with("```"));
    if lines.next().is_none() {
        return Err(format!("no fenced block after `{tag}`"));
    }
    let mut graph = Graph::default();
    for line in lines {
        let line = line.trim();
        if line.starts_with("```") {
            return Ok(graph);
        }
        if line.is_empty() {
            continue;
        }
        let (from, to) = line
            .split_once('→')
            .ok_or_else(|| format!("`{line}` under `{tag}` has no `→`"))?;
        let from = from.trim().to_string();
        for dep in to.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            graph.edges.insert((from.clone(), dep.to_string()));
        }
        if !graph.packages.insert(from.clone()) {
            return Err(format!("`{from}` listed twice under `{tag}`"));
        }
        graph.order.push(from);
    }
    Err(format!("the block after `{tag}` is not closed"))
}

/// Normal (and build) and dev-only edges between workspace members, from `cargo metadata`.
fn cargo_graphs() -> (Graph, Graph) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(root().join("Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let packages: Vec<&serde_json::Value> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(id)))
        .collect();
    let names: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(String::from))
        .collect();
    let (mut normal, mut dev) = (Graph::default(), Graph::default());
    normal.packages = names.clone();
    dev.packages = names.clone();
    for p in packages {
        let from = p["name"].as_str().expect("package name");
        for d in p["dependencies"].as_array().expect("dependencies") {
            let to = d["name"].as_str().expect("dependency name");
            if !names.contains(to) {
                continue;
            }
            let edge = (from.to_string(), to.to_string());
            match d["kind"].as_str() {
                Some("dev") => dev.edges.insert(edge),
                _ => normal.edges.insert(edge),
            };
        }
    }
    // A crate that is both a dependency and a dev-dependency is a normal edge.
    dev.edges = &dev.edges - &normal.edges;
    (normal, dev)
}

/// What differs between the documented and the real graph, one line per difference.
fn differences(what: &str, documented: &Graph, real: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for p in real.packages.difference(&documented.packages) {
        out.push(format!("{what}: package {p} is missing from the list"));
    }
    for p in documented.packages.difference(&real.packages) {
        out.push(format!(
            "{what}: {p} is listed but is not a workspace package"
        ));
    }
    for (a, b) in real.edges.difference(&documented.edges) {
        out.push(format!(
            "{what}: {a} → {b} is in Cargo.toml but not in the docs"
        ));
    }
    for (a, b) in documented.edges.difference(&real.edges) {
        out.push(format!(
            "{what}: {a} → {b} is in the docs but not in Cargo.toml"
        ));
    }
    out
}

#[test]
fn architecture_doc_lists_the_real_dependency_graph() {
    let path = root().join("docs/architecture.md");
    let text = std::fs::read_to_string(&path).expect("docs/architecture.md is readable");
    let doc_normal = parse_list(&text, "dependencies").unwrap_or_else(|e| panic!("{e}"));
    let doc_dev = parse_list(&text, "dev-dependencies").unwrap_or_else(|e| panic!("{e}"));
    let (normal, dev) = cargo_graphs();
    let mut diff = differences("dependencies", &doc_normal, &normal);
    diff.extend(differences("dev-dependencies", &doc_dev, &dev));
    assert!(
        diff.is_empty(),
        "docs/architecture.md does not match the Cargo.toml files:\n  {}",
        diff.join("\n  ")
    );
    // The graph has no cycle and runs one way: every edge goes to a package listed earlier.
    let order: BTreeMap<&str, usize> = doc_normal
        .order
        .iter()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i))
        .collect();
    for (a, b) in &normal.edges {
        assert!(
            order[a.as_str()] > order[b.as_str()],
            "{a} → {b}: docs/architecture.md lists the crates bottom-up; {b} must come before {a}"
        );
    }
}

#[test]
fn parser_and_comparison_report_the_differing_edges() {
    let doc = "x\n<!-- dependencies -->\n\n```text\na →\nb → a\nc → a, b\n```\n";
    let g = parse_list(doc, "dependencies").unwrap();
    assert_eq!(g.packages.len(), 3);
    assert_eq!(g.edges.len(), 3);
    assert_eq!(g.order, ["a", "b", "c"]);
    let mut real = Graph {
        packages: g.packages.clone(),
        edges: g.edges.clone(),
        order: Vec::new(),
    };
    assert!(differences("d", &g, &real).is_empty());
    real.edges.remove(&("c".into(), "b".into()));
    real.edges.insert(("b".into(), "c".into()));
    real.packages.insert("e".into());
    let diff = differences("d", &g, &real);
    assert_eq!(
        diff,
        [
            "d: package e is missing from the list",
            "d: b → c is in Cargo.toml but not in the docs",
            "d: c → b is in the docs but not in Cargo.toml",
        ]
    );
    assert!(parse_list("no marker", "dependencies").is_err());
    assert!(parse_list("<!-- dependencies -->\n```\na → b\n", "dependencies").is_err());
    assert!(parse_list("<!-- dependencies -->\n```\na b\n```\n", "dependencies").is_err());
}
