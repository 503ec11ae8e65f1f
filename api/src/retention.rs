//! Retention (`folio gc`): delete documents older than N days. A document's age is its
//! manifest's `created_at`; everything under its prefix goes (source, pages, results, progress
//! log, callback records), and its webhook notices leave the outbox. A document prefix without a
//! manifest (an upload refused or interrupted before the manifest was written) is reported and
//! kept: its age is unknown.

use folio_schemas::lifecycle::CALLBACK_OUTBOX_PREFIX;
use folio_schemas::Manifest;
use folio_transport::{ObjectStore, TransportError};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// What `folio gc` looks at and does.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Documents created before this are deleted.
    pub cutoff: OffsetDateTime,
    /// Only this tenant's documents; all tenants when `None`.
    pub tenant: Option<String>,
    /// Report, delete nothing.
    pub dry_run: bool,
}

/// One expired document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub tenant: String,
    pub document_id: String,
    pub created_at: String,
    /// Objects under its prefix (deleted unless dry run), outbox notices included.
    pub objects: usize,
}

/// What a run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Documents looked at.
    pub documents: usize,
    pub expired: Vec<Expired>,
    /// Document prefixes without a readable manifest (kept).
    pub unknown_age: Vec<String>,
    /// Objects deleted (0 in a dry run).
    pub deleted_objects: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("store: {0}")]
    Store(#[from] TransportError),
}

/// Find the documents older than `cutoff` and (unless dry run) delete them.
pub async fn collect(store: &dyn ObjectStore, options: &GcOptions) -> Result<GcReport, GcError> {
    let root = match &options.tenant {
        Some(t) => format!("{t}/docs/"),
        None => String::new(),
    };
    // `{tenant}/docs/{id}/…` → that document's keys.
    let mut documents: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for key in store.list(&root).await? {
        let mut parts = key.splitn(4, '/');
        let (Some(tenant), Some("docs"), Some(id), Some(_)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if !folio_transport::valid_tenant(tenant) {
            continue;
        }
        documents
            .entry((tenant.to_string(), id.to_string()))
            .or_default()
            .push(key);
    }
    let mut report = GcReport {
        documents: documents.len(),
        ..GcReport::default()
    };
    for ((tenant, id), mut keys) in documents {
        let manifest_key = format!("{tenant}/docs/{id}/manifest.json");
        let created = match store.get(&manifest_key).await {
            Ok(bytes) => serde_json::from_slice::<Manifest>(&bytes)
                .ok()
                .and_then(|m| {
                    OffsetDateTime::parse(&m.created_at, &Rfc3339)
                        .ok()
                        .map(|t| (t, m.created_at))
                }),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        };
        let Some((created, created_at)) = created else {
            report.unknown_age.push(format!("{tenant}/docs/{id}/"));
            continue;
        };
        if created >= options.cutoff {
            continue;
        }
        keys.extend(
            store
                .list(&format!("{CALLBACK_OUTBOX_PREFIX}{tenant}/{id}/"))
                .await?,
        );
        // The manifest last: a run cut short leaves a document that the next run finds again.
        keys.sort_by_key(|k| *k == manifest_key);
        if !options.dry_run {
            for key in &keys {
                store.delete(key).await?;
            }
            report.deleted_objects += keys.len();
            tracing::info!(%tenant, document_id = %id, %created_at, objects = keys.len(), "expired document deleted");
        }
        report.expired.push(Expired {
            tenant,
            document_id: id,
            created_at,
            objects: keys.len(),
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use folio_transport::LocalDirStore;

    async fn doc(store: &LocalDirStore, tenant: &str, id: &str, created_at: &str) {
        let manifest = serde_json::json!({
            "schema_version": "1.0", "tenant": tenant, "document_id": id,
            "media_type": "image/png", "sha256": "00", "size_bytes": 1, "pages": [1],
            "source_page_count": 1, "options": {"engine": "ocr", "dpi": 200},
            "created_at": created_at,
        });
        let put = |k: String, b: Vec<u8>| async move {
            store.put(&k, b.into(), "application/json").await.unwrap()
        };
        put(
            format!("{tenant}/docs/{id}/manifest.json"),
            manifest.to_string().into_bytes(),
        )
        .await;
        put(
            format!("{tenant}/docs/{id}/results/00001.json"),
            b"{}".to_vec(),
        )
        .await;
    }

    #[tokio::test]
    async fn old_documents_go_recent_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path()).unwrap();
        doc(&store, "acme", "old", "2020-01-01T00:00:00Z").await;
        doc(&store, "acme", "new", "2030-01-01T00:00:00Z").await;
        doc(&store, "beta", "old", "2020-01-01T00:00:00Z").await;
        store
            .put(
                "acme/docs/orphan/source",
                b"x".to_vec().into(),
                "application/pdf",
            )
            .await
            .unwrap();
        let cutoff = OffsetDateTime::parse("2025-01-01T00:00:00Z", &Rfc3339).unwrap();
        let mut options = GcOptions {
            cutoff,
            tenant: Some("acme".into()),
            dry_run: true,
        };
        let dry = collect(&store, &options).await.unwrap();
        assert_eq!(dry.documents, 3);
        assert_eq!(dry.expired.len(), 1);
        assert_eq!(dry.expired[0].objects, 2);
        assert_eq!(dry.unknown_age, vec!["acme/docs/orphan/".to_string()]);
        assert_eq!(dry.deleted_objects, 0);
        assert!(store.exists("acme/docs/old/manifest.json").await.unwrap());
        options.dry_run = false;
        let run = collect(&store, &options).await.unwrap();
        assert_eq!(run.deleted_objects, 2);
        assert!(store.list("acme/docs/old/").await.unwrap().is_empty());
        assert!(store.exists("acme/docs/new/manifest.json").await.unwrap());
        assert!(
            store.exists("beta/docs/old/manifest.json").await.unwrap(),
            "other tenant untouched"
        );
    }
}
