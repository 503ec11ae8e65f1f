//! The OpenAPI 3.1 document: paths and API types from utoipa, output types (`DocumentResult`,
//! `PageResult`, `PageError`) from the JSON Schemas that `folio-schemas` generates, so the
//! document and `schemas/json/*.schema.json` cannot disagree. Committed as
//! `schemas/json/openapi.json`; a test fails when it drifts.

use crate::http::cancel::{self, CancelResponse};
use crate::http::error::{ErrorBody, ErrorDetail};
use crate::http::ops::{self, HealthBody};
use crate::http::progress;
use crate::http::status::{self, DocState, PageFailure, PageState, PageStatus, StatusResponse};
use crate::http::upload::{self, UploadAccepted};
use crate::http::view::{self, ViewLink};
use folio_schemas::{DocumentResult, PageError, PageResult};
use serde_json::{Map, Value};
use std::sync::OnceLock;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Ref, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

/// Marks where a placeholder stands until the folio-schemas definition replaces it.
const PLACEHOLDER: &str = "folio-schemas placeholder";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Folio API",
        description = "Upload documents (PDF, PNG, JPEG, TIFF, WebP, BMP); each page is rasterized \
            and processed by an engine (`ocr` on CPU, `glm45v` on GPU) into structured JSON. \
            Authenticate with `Authorization: Bearer <key>`; errors are \
            `{ \"error\": { \"code\", \"message\" } }`."
    ),
    paths(
        upload::upload,
        status::get_status,
        status::get_result,
        status::get_page,
        view::get_view,
        view::get_view_link,
        view::get_page_image,
        cancel::cancel,
        progress::events,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi_json,
    ),
    components(schemas(
        UploadAccepted,
        CancelResponse,
        StatusResponse,
        PageStatus,
        PageState,
        PageFailure,
        DocState,
        ErrorBody,
        ErrorDetail,
        HealthBody,
        ViewLink,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "documents", description = "Upload documents and read their results"),
        (name = "viewer", description = "See a document's blocks over its page images, in a browser"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key from the server's configuration"))
                    .build(),
            ),
        );
    }
}

/// `document.json` in path declarations; its definition comes from folio-schemas.
pub struct DocumentResultDoc;

impl PartialSchema for DocumentResultDoc {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().description(Some(PLACEHOLDER)).into()
    }
}

impl ToSchema for DocumentResultDoc {
    fn name() -> std::borrow::Cow<'static, str> {
        "DocumentResult".into()
    }
}

/// A page's stored outcome: its result, or its error record.
pub struct PageOutcomeDoc;

impl PartialSchema for PageOutcomeDoc {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(Ref::from_schema_name("PageResult"))
            .item(Ref::from_schema_name("PageError"))
            .into()
    }
}

impl ToSchema for PageOutcomeDoc {
    fn name() -> std::borrow::Cow<'static, str> {
        "PageOutcome".into()
    }
}

/// The OpenAPI document, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| match build() {
        Ok(doc) => doc,
        Err(e) => {
            // Covered by the committed-file test; never expected at run time.
            tracing::error!(error = %e, "cannot build the OpenAPI document");
            serde_json::json!({ "openapi": "3.1.0", "error": e })
        }
    })
}

/// The document as committed: pretty JSON with a trailing newline.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(document()).unwrap_or_default();
    text.push('\n');
    text
}

fn build() -> Result<Value, String> {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).map_err(|e| e.to_string())?;
    let schemas = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
        .ok_or("the generated document has no components.schemas")?;
    let external = [
        ("DocumentResult", schemars::schema_for!(DocumentResult)),
        ("PageResult", schemars::schema_for!(PageResult)),
        ("PageError", schemars::schema_for!(PageError)),
    ];
    for (name, schema) in external {
        let mut value = serde_json::to_value(schema).map_err(|e| e.to_string())?;
        let Value::Object(ref mut root) = value else {
            return Err(format!("the schema of {name} is not an object"));
        };
        // The root's `$schema` and `title` (the type name) are not part of its definition as
        // a component; without them it equals the same type nested in another's `$defs`.
        root.remove("$schema");
        root.remove("title");
        let defs = root.remove("$defs");
        if let Some(Value::Object(defs)) = defs {
            for (def_name, def) in defs {
                insert(schemas, def_name, def)?;
            }
        }
        insert(schemas, name.to_string(), value)?;
    }
    Ok(doc)
}

/// Add a folio-schemas definition, rewriting its `#/$defs/X` references to components. A name
/// already taken by a different definition is an error (placeholders are meant to be replaced).
fn insert(schemas: &mut Map<String, Value>, name: String, mut def: Value) -> Result<(), String> {
    rewrite_refs(&mut def);
    match schemas.get(&name) {
        Some(existing) if existing != &def && !is_placeholder(existing) => Err(format!(
            "schema name {name:?} is defined twice, differently"
        )),
        _ => {
            schemas.insert(name, def);
            Ok(())
        }
    }
}

fn is_placeholder(v: &Value) -> bool {
    v.get("description").and_then(Value::as_str) == Some(PLACEHOLDER)
}

fn rewrite_refs(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "$ref" {
                    if let Value::String(s) = child {
                        if let Some(rest) = s.strip_prefix("#/$defs/") {
                            *s = format!("#/components/schemas/{rest}");
                        }
                    }
                } else {
                    rewrite_refs(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    match (k.as_str(), child) {
                        ("$ref", Value::String(s)) => out.push(s.clone()),
                        _ => refs(child, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_and_no_placeholder_is_left() {
        let doc = build().unwrap();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.iter().any(|r| r == "#/components/schemas/PageResult"));
        for r in &all {
            let pointer = r.strip_prefix('#').unwrap_or(r);
            assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
        }
        let text = doc.to_string();
        assert!(!text.contains(PLACEHOLDER));
        assert!(!text.contains("#/$defs/"));
        assert_eq!(doc["openapi"], "3.1.0");
        for path in [
            "/v1/documents",
            "/v1/documents/{id}",
            "/v1/documents/{id}/result",
            "/v1/documents/{id}/pages/{page}",
            "/v1/documents/{id}/pages/{page}/image",
            "/v1/documents/{id}/view",
            "/v1/documents/{id}/view-link",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
        }
    }
}
