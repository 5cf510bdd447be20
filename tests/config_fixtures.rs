//! The config fixtures in testdata/configs parse, so README's config
//! reference (copied into full.toml) stays valid, and every key in it is
//! documented in README.

use instarec::config::ConfigSources;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/configs")
        .join(name)
}

#[test]
fn the_full_reference_config_parses_with_every_section() {
    let sources = ConfigSources {
        file: Some(fixture("full.toml")),
        ..Default::default()
    };
    let config = sources
        .resolve()
        .expect("testdata/configs/full.toml parses");
    let primary = config.primary.expect("[primary]");
    assert_eq!(primary.slot, "instarec");
    assert!(config.cutover.as_ref().unwrap().pgbouncer.is_some());
    assert!(config.cutover.as_ref().unwrap().haproxy.is_some());
    assert!(config.cutover.as_ref().unwrap().hook.is_some());
    assert!(config.relay.is_some());
    assert!(config.metrics.is_some());
}

#[test]
fn the_readme_reference_is_the_fixture() {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let start = readme
        .find("```toml\n[archive]")
        .expect("README has the config reference")
        + "```toml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let fixture = std::fs::read_to_string(fixture("full.toml")).unwrap();
    let body = fixture.split_once('\n').unwrap().1;
    assert_eq!(
        body,
        &readme[start..end],
        "README's config reference and testdata/configs/full.toml differ; copy one into the other"
    );
}
