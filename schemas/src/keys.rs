//! The object-store key layout, in one place: `{tenant}/docs/{doc_id}/...`.
//!
//! Keys are deterministic so that a redelivered job overwrites the same object.

/// Keys of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocKeys {
    prefix: String,
}

impl DocKeys {
    pub fn new(tenant: &str, document_id: &str) -> Self {
        DocKeys {
            prefix: format!("{tenant}/docs/{document_id}"),
        }
    }
    /// `{tenant}/docs/{doc_id}/`
    pub fn prefix(&self) -> String {
        format!("{}/", self.prefix)
    }
    pub fn source(&self) -> String {
        format!("{}/source", self.prefix)
    }
    pub fn manifest(&self) -> String {
        format!("{}/manifest.json", self.prefix)
    }
    pub fn page_image(&self, page: u32) -> String {
        format!("{}/pages/{page:05}.png", self.prefix)
    }
    /// Prefix under which page results and error records live.
    pub fn results_prefix(&self) -> String {
        format!("{}/results/", self.prefix)
    }
    pub fn page_result(&self, page: u32) -> String {
        format!("{}/results/{page:05}.json", self.prefix)
    }
    pub fn page_error(&self, page: u32) -> String {
        format!("{}/results/{page:05}.error.json", self.prefix)
    }
    pub fn document_json(&self) -> String {
        format!("{}/document.json", self.prefix)
    }
    pub fn document_md(&self) -> String {
        format!("{}/document.md", self.prefix)
    }
}

/// What a key under `results/` records, parsed from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKey {
    Page(u32),
    Error(u32),
}

impl ResultKey {
    /// Parse `…/results/00003.json` or `…/results/00003.error.json`; anything else is `None`.
    pub fn parse(key: &str) -> Option<ResultKey> {
        let name = key.rsplit('/').next()?;
        if let Some(stem) = name.strip_suffix(".error.json") {
            return stem.parse().ok().map(ResultKey::Error);
        }
        let stem = name.strip_suffix(".json")?;
        stem.parse().ok().map(ResultKey::Page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_stable() {
        let k = DocKeys::new("acme", "d1");
        assert_eq!(k.page_image(3), "acme/docs/d1/pages/00003.png");
        assert_eq!(k.page_result(12), "acme/docs/d1/results/00012.json");
        assert_eq!(k.page_error(12), "acme/docs/d1/results/00012.error.json");
        assert_eq!(k.document_json(), "acme/docs/d1/document.json");
    }

    #[test]
    fn result_keys_parse() {
        assert_eq!(
            ResultKey::parse("a/docs/d/results/00007.json"),
            Some(ResultKey::Page(7))
        );
        assert_eq!(
            ResultKey::parse("a/docs/d/results/00007.error.json"),
            Some(ResultKey::Error(7))
        );
        assert_eq!(ResultKey::parse("a/docs/d/results/notes.txt"), None);
        assert_eq!(ResultKey::parse("a/docs/d/results/x.json"), None);
    }
}
