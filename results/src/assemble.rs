//! Document completion: once every selected page has a result or an error record, write
//! `document.md` and then `document.json` (the completion marker), then end the document
//! ([`crate::ending`]: the end logged, the completion webhook queued).
//!
//! Assembly reads only what is in the store and never the clock, so assembling twice — e.g. by two
//! workers that finished the last two pages at once, or a worker and the API — writes the same
//! bytes. `completed_at` is the latest `finished_at` of the page records, not the time of assembly.

use crate::clock;
use crate::ending::{end_document, Ending};
use crate::json::to_bytes;
use crate::markdown::document_markdown;
use folio_schemas::{
    DocKeys, DocumentResult, DocumentStatus, EndStatus, Manifest, PageError, PageResult, ResultKey,
    SourceInfo, SCHEMA_VERSION,
};
use folio_transport::{ObjectStore, TransportError};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error("store: {0}")]
    Store(#[from] TransportError),
    #[error("{key} is not valid JSON of its type: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
}

impl AssembleError {
    pub fn is_transient(&self) -> bool {
        matches!(self, AssembleError::Store(e) if e.is_transient())
    }
}

/// Where a document stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    Incomplete { done: usize, total: usize },
    Assembled(Box<DocumentResult>),
}

/// Build the document from its manifest and page records (pure).
pub fn build_document(
    manifest: &Manifest,
    results: BTreeMap<u32, PageResult>,
    mut errors: BTreeMap<u32, PageError>,
) -> DocumentResult {
    // A page that succeeded on a later attempt keeps its result only.
    errors.retain(|page, _| !results.contains_key(page));
    let completed_at = clock::latest(
        results
            .values()
            .filter_map(|r| r.finished_at.as_deref())
            .chain(errors.values().filter_map(|e| e.finished_at.as_deref())),
    );
    let markdown = document_markdown(manifest.pages.iter().map(|&p| {
        let md = match (results.get(&p), errors.get(&p)) {
            (Some(r), _) => Ok(r.markdown.as_str()),
            (None, Some(e)) => Err(e.code.as_str()),
            (None, None) => Err("missing"),
        };
        (p, md)
    }));
    DocumentResult {
        schema_version: SCHEMA_VERSION.into(),
        document_id: manifest.document_id.clone(),
        source: SourceInfo {
            file_name: manifest.file_name.clone(),
            media_type: manifest.media_type.clone(),
            sha256: manifest.sha256.clone(),
            size_bytes: manifest.size_bytes,
            page_count: manifest.source_page_count,
        },
        status: if errors.is_empty() {
            DocumentStatus::Complete
        } else {
            DocumentStatus::Partial
        },
        pages: results.into_values().collect(),
        errors: errors.into_values().collect(),
        markdown,
        created_at: manifest.created_at.clone(),
        completed_at,
    }
}

/// Check whether the document is complete and, if so, write `document.md` and `document.json`.
pub async fn try_assemble(
    store: &dyn ObjectStore,
    tenant: &str,
    document_id: &str,
) -> Result<Completion, AssembleError> {
    let keys = DocKeys::new(tenant, document_id);
    let manifest: Manifest = read_json(store, &keys.manifest()).await?;
    let listed = store.list(&keys.results_prefix()).await?;
    let mut done = BTreeSet::new();
    for key in &listed {
        match ResultKey::parse(key) {
            Some(ResultKey::Page(p)) | Some(ResultKey::Error(p)) => {
                done.insert(p);
            }
            None => {}
        }
    }
    let total = manifest.pages.len();
    let done_count = manifest.pages.iter().filter(|p| done.contains(p)).count();
    if done_count < total {
        return Ok(Completion::Incomplete {
            done: done_count,
            total,
        });
    }
    let mut results = BTreeMap::new();
    let mut errors = BTreeMap::new();
    for key in &listed {
        match ResultKey::parse(key) {
            Some(ResultKey::Page(p)) if manifest.pages.contains(&p) => {
                results.insert(p, read_json::<PageResult>(store, key).await?);
            }
            Some(ResultKey::Error(p)) if manifest.pages.contains(&p) => {
                errors.insert(p, read_json::<PageError>(store, key).await?);
            }
            _ => {}
        }
    }
    let doc = build_document(&manifest, results, errors);
    store
        .put(
            &keys.document_md(),
            doc.markdown.clone().into(),
            "text/markdown; charset=utf-8",
        )
        .await?;
    store
        .put(&keys.document_json(), to_bytes(&doc), "application/json")
        .await?;
    let (pages_done, pages_failed) = (doc.pages.len() as u32, doc.errors.len() as u32);
    let ending = Ending {
        status: EndStatus::from_counts(pages_done, pages_failed),
        pages_total: total as u32,
        pages_done,
        pages_failed,
    };
    end_document(store, tenant, document_id, ending).await?;
    Ok(Completion::Assembled(Box::new(doc)))
}

async fn read_json<T: serde::de::DeserializeOwned>(
    store: &dyn ObjectStore,
    key: &str,
) -> Result<T, AssembleError> {
    let bytes = store.get(key).await?;
    serde_json::from_slice(&bytes).map_err(|source| AssembleError::Corrupt {
        key: key.into(),
        source,
    })
}
