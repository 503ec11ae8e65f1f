//! From a sorted key listing to the items of a run.
//!
//! In Folio's own bucket the items are documents: every `{tenant}/docs/{id}/` with a
//! `manifest.json`, with what is stored under it (page images, results, error records), read from
//! the same listing (the keys of one document are contiguous in key order). Other keys there
//! (trigger records, checkpoints) are not items. In any other bucket every object is an item, but
//! folder markers (`…/`).

use folio_schemas::ResultKey;
use std::collections::BTreeSet;

/// One document as the listing shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocListing {
    pub tenant: String,
    pub document_id: String,
    pub has_manifest: bool,
    /// Pages with a stored image (`pages/{page:05}.png`).
    pub images: BTreeSet<u32>,
    /// Pages with a result (`results/{page:05}.json`).
    pub results: BTreeSet<u32>,
    /// Pages with an error record (`results/{page:05}.error.json`).
    pub errors: BTreeSet<u32>,
    /// `document.json` or `document.md` exists (the document was assembled).
    pub assembled: bool,
}

impl DocListing {
    /// `{tenant}/docs/{id}/`: the item's key.
    pub fn prefix(&self) -> String {
        format!("{}/docs/{}/", self.tenant, self.document_id)
    }

    /// Pages that failed: an error record and no result.
    pub fn failed_pages(&self) -> BTreeSet<u32> {
        self.errors.difference(&self.results).copied().collect()
    }

    fn add(&mut self, rest: &str) {
        if rest == "manifest.json" {
            self.has_manifest = true;
        } else if rest == "document.json" || rest == "document.md" {
            self.assembled = true;
        } else if let Some(name) = rest.strip_prefix("pages/") {
            if let Some(page) = name.strip_suffix(".png").and_then(|n| n.parse().ok()) {
                self.images.insert(page);
            }
        } else if rest.starts_with("results/") {
            match ResultKey::parse(rest) {
                Some(ResultKey::Page(p)) => {
                    self.results.insert(p);
                }
                Some(ResultKey::Error(p)) => {
                    self.errors.insert(p);
                }
                None => {}
            }
        }
    }
}

/// A unit of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A document Folio stored: its page images are enqueued again.
    Document(DocListing),
    /// A raw object of a source bucket: ingested (or, when the triggers know it, handled as its
    /// document).
    Object(String),
}

impl Item {
    /// The key the run is ordered and checkpointed by.
    pub fn key(&self) -> String {
        match self {
            Item::Document(d) => d.prefix(),
            Item::Object(k) => k.clone(),
        }
    }
}

/// `(tenant, id, rest)` of a key under `{tenant}/docs/{id}/`.
fn split_doc_key(key: &str) -> Option<(&str, &str, &str)> {
    let mut parts = key.splitn(4, '/');
    let (tenant, docs, id, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (docs == "docs" && !tenant.is_empty() && !id.is_empty() && !tenant.starts_with('.'))
        .then_some((tenant, id, rest))
}

/// The documents among sorted `keys` (Folio's bucket).
pub fn documents(keys: &[String]) -> Vec<Item> {
    let mut out = Vec::new();
    let mut current: Option<DocListing> = None;
    for key in keys {
        let Some((tenant, id, rest)) = split_doc_key(key) else {
            continue;
        };
        let same = current
            .as_ref()
            .is_some_and(|d| d.tenant == tenant && d.document_id == id);
        if !same {
            if let Some(done) = current.take().filter(|d| d.has_manifest) {
                out.push(Item::Document(done));
            }
            current = Some(DocListing {
                tenant: tenant.to_string(),
                document_id: id.to_string(),
                ..DocListing::default()
            });
        }
        if let Some(d) = current.as_mut() {
            d.add(rest);
        }
    }
    if let Some(done) = current.filter(|d| d.has_manifest) {
        out.push(Item::Document(done));
    }
    out
}

/// One document's listing from the keys under its prefix.
pub fn document(tenant: &str, document_id: &str, keys: &[String]) -> DocListing {
    let mut d = DocListing {
        tenant: tenant.to_string(),
        document_id: document_id.to_string(),
        ..DocListing::default()
    };
    for key in keys {
        if let Some((t, id, rest)) = split_doc_key(key) {
            if t == tenant && id == document_id {
                d.add(rest);
            }
        }
    }
    d
}

/// The objects among `keys` (a source bucket): all but folder markers.
pub fn objects(keys: &[String]) -> Vec<Item> {
    keys.iter()
        .filter(|k| !k.ends_with('/'))
        .map(|k| Item::Object(k.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn groups_documents_and_skips_the_rest() {
        let k = keys(&[
            "acme/docs/d1/manifest.json",
            "acme/docs/d1/source",
            "acme/docs/d1/pages/00001.png",
            "acme/docs/d1/pages/00002.png",
            "acme/docs/d1/results/00001.json",
            "acme/docs/d1/results/00002.error.json",
            "acme/docs/d1/document.json",
            "acme/docs/d2/pages/00001.png", // no manifest: not a document
            "acme/triggers/seen/abc.json",
            "beta/docs/d3/manifest.json",
            ".folio/reprocess/x.json",
        ]);
        let items = documents(&k);
        assert_eq!(items.len(), 2);
        let Item::Document(d1) = &items[0] else {
            panic!()
        };
        assert_eq!(d1.prefix(), "acme/docs/d1/");
        assert_eq!(d1.images.iter().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(d1.failed_pages().into_iter().collect::<Vec<_>>(), vec![2]);
        assert!(d1.assembled);
        assert_eq!(items[1].key(), "beta/docs/d3/");
        let one = document("acme", "d1", &k);
        assert_eq!(&one, d1);
    }

    #[test]
    fn objects_skip_folder_markers() {
        let items = objects(&keys(&["scans/", "scans/a.pdf", "scans/b/c.png"]));
        assert_eq!(
            items.iter().map(Item::key).collect::<Vec<_>>(),
            vec!["scans/a.pdf", "scans/b/c.png"]
        );
    }
}
