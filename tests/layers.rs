//! The layering rule (core ← adapters ← service ← binary) holds, and its
//! check still catches what it should: `scripts/check-layers` on this tree,
//! then on copies with a violation of each rule planted (`--self-test`).

use std::process::Command;

fn check_layers(args: &[&str]) -> (bool, String) {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/check-layers"))
        .args(args)
        .output()
        .expect("bash runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn dependencies_point_from_service_to_adapters_to_core() {
    let (ok, text) = check_layers(&[]);
    assert!(ok, "{text}");
}

#[test]
fn the_layer_check_catches_each_planted_violation() {
    let (ok, text) = check_layers(&["--self-test"]);
    assert!(ok, "{text}");
    assert!(text.contains("planted violations caught"), "{text}");
}
