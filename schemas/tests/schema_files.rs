//! The committed JSON Schema files must equal the generated ones; every type round-trips.
//! Regenerate with `FOLIO_UPDATE_SCHEMAS=1 cargo test -p folio-schemas`.

use std::path::PathBuf;

fn json_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json")
}

#[test]
fn committed_schemas_match_generated() {
    let update = std::env::var_os("FOLIO_UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (name, schema) in folio_schemas::all_schemas() {
        let path = json_dir().join(name);
        let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if update {
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == generated => {}
            _ => stale.push(name),
        }
    }
    assert!(
        stale.is_empty(),
        "schemas/json is out of date for {stale:?}; run FOLIO_UPDATE_SCHEMAS=1 cargo test -p folio-schemas"
    );
}
