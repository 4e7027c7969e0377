//! The rules folder on disk: lists and reads `rules/*.yaml` for
//! `core::rules`, which parses and checks them.

use std::path::Path;

use crate::core::rules::{Rules, RulesError};

/// Loads every `*.yaml` and `*.yml` file of `dir`, in file-name order,
/// and concatenates their rules in that order.
///
/// Hidden entries are skipped, so a Kubernetes ConfigMap mount (with its
/// `..data` folder and symlinks) loads as expected. Refused: a missing or
/// empty folder, a rule name used twice (in any files), and a gate that
/// two files define differently.
///
/// # Errors
///
/// [`RulesError::Io`] for the folder or a file that cannot be read, or
/// a folder without rules files; [`RulesError::Invalid`] for a mistake
/// in a file, with the file and line.
pub fn load_dir(dir: &Path) -> Result<Rules, RulesError> {
    let io_error = |file: &Path, reason: String| RulesError::Io {
        file: file.display().to_string(),
        reason,
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| io_error(dir, format!("cannot read the rules folder: {e}")))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| io_error(dir, format!("cannot list the rules folder: {e}")))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        let is_yaml = Path::new(name)
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml"));
        // `metadata` follows symlinks, as ConfigMap mounts need.
        if !is_yaml
            || name.starts_with('.')
            || !std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file())
        {
            continue;
        }
        paths.push((name.to_string(), entry.path()));
    }
    paths.sort();
    if paths.is_empty() {
        return Err(io_error(
            dir,
            "no rules files (*.yaml or *.yml) in this folder".into(),
        ));
    }
    Rules::from_files(paths.iter().map(|(_, path)| {
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path)
            .map_err(|e| io_error(path, format!("cannot read: {e}")))?;
        Ok((file, source))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    // --- folders --------------------------------------------------------

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        dir
    }

    fn rule_yaml(name: &str) -> String {
        format!("rules:\n  - name: {name}\n    match: ['x=\"{name}\"']\n    decision: notify\n    deadline: 1m\n")
    }

    #[test]
    fn folder_loads_yaml_files_in_name_order() {
        let dir = folder(&[
            ("20-b.yml", &rule_yaml("b")),
            ("10-a.yaml", &rule_yaml("a")),
            (
                "30-c.yaml",
                &format!("gate:\n  annotation: auto\n{}", rule_yaml("c")),
            ),
            ("README.md", "not rules"),
            (".hidden.yaml", "not: [rules"),
        ]);
        let rules = load_dir(dir.path()).unwrap();
        let names: Vec<_> = rules.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(rules.gate.annotation, "auto");
    }

    #[test]
    fn folder_errors_name_the_file() {
        let dir = folder(&[
            ("a.yaml", &rule_yaml("a")),
            (
                "b.yaml",
                "rules:\n  - name: b\n    match: []\n    decision: nope\n",
            ),
        ]);
        let file = dir.path().join("b.yaml").display().to_string();
        assert_eq!(
            load_dir(dir.path()).unwrap_err().to_string(),
            format!("{file}:4: rule \"b\": unknown decision \"nope\" (expected one of rollback, rollback-after, notify, ignore)")
        );
    }

    #[test]
    fn duplicate_names_across_files_are_refused() {
        let dir = folder(&[
            ("a.yaml", &rule_yaml("same")),
            (
                "b.yaml",
                &format!(
                    "{}  - name: same\n    match: []\n    decision: ignore\n",
                    rule_yaml("other")
                ),
            ),
        ]);
        let a = dir.path().join("a.yaml").display().to_string();
        let b = dir.path().join("b.yaml").display().to_string();
        assert_eq!(
            load_dir(dir.path()).unwrap_err().to_string(),
            format!("{b}:6: duplicate rule name \"same\" (first defined at {a}:2)")
        );
    }

    #[test]
    fn gates_that_differ_between_files_are_refused() {
        let dir = folder(&[
            (
                "a.yaml",
                &format!(
                    "gate:\n  annotation: rollback\n  value: \"true\"\n{}",
                    rule_yaml("a")
                ),
            ),
            (
                "b.yaml",
                &format!(
                    "gate:\n  annotation: rollback\n  value: \"yes\"\n{}",
                    rule_yaml("b")
                ),
            ),
            ("c.yaml", &rule_yaml("c")),
        ]);
        let a = dir.path().join("a.yaml").display().to_string();
        let b = dir.path().join("b.yaml").display().to_string();
        assert_eq!(
            load_dir(dir.path()).unwrap_err().to_string(),
            format!("{b}:3: gate annotation rollback=\"yes\" differs from annotation rollback=\"true\" in {a}:3: all files must agree on the gate (or define it in one file only)")
        );
        // The same gate in two files is fine.
        std::fs::write(
            dir.path().join("b.yaml"),
            format!("gate:\n  value: \"true\"\n{}", rule_yaml("b")),
        )
        .unwrap();
        assert_eq!(load_dir(dir.path()).unwrap().rules.len(), 3);
    }

    #[test]
    fn missing_or_empty_folder_is_an_error() {
        let dir = folder(&[("notes.txt", "x")]);
        let shown = dir.path().display().to_string();
        assert_eq!(
            load_dir(dir.path()).unwrap_err().to_string(),
            format!("{shown}: no rules files (*.yaml or *.yml) in this folder")
        );
        let missing = dir.path().join("nope");
        let err = load_dir(&missing).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}: cannot read the rules folder: ",
                missing.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn shipped_folder_loads_the_embedded_rules() {
        // The shipped folder loads the same rules as the embedded copy.
        let rules = Rules::embedded_default();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        assert_eq!(load_dir(&dir).unwrap(), rules);
    }
}
