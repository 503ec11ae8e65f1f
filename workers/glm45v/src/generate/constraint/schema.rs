//! JSON Schema (the subset the profiles use) → a node graph the byte matcher walks.
//!
//! Supported: `type` (one or a list), `properties` (emitted compact, without whitespace, in
//! the order of `required`, optional ones after; `additionalProperties` absent or false), `required`, `items`,
//! `minItems`/`maxItems`, `minLength`/`maxLength`, `enum`/`const` of scalars, `anyOf`/`oneOf`
//! whose alternatives start with different bytes. Annotations (`title`, `description`,
//! `default`, `examples`, `$schema`) are ignored; any other keyword is an error, so a schema is
//! never enforced more loosely than written.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Index of a node in [`Schema::nodes`].
pub(crate) type NodeId = u16;

/// One property of an object node.
#[derive(Debug, Clone)]
pub(crate) struct Prop {
    /// The key as written, with quotes: `"name"`.
    pub key: Vec<u8>,
    pub node: NodeId,
    pub required: bool,
}

/// What a value must look like.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Object(Vec<Prop>),
    Array {
        items: NodeId,
        min: u32,
        max: u32,
    },
    /// A free string (content bytes after the opening quote).
    String {
        min: u32,
        max: u32,
    },
    Number {
        integer: bool,
    },
    /// One of these exact byte strings (`true`, `null`, `"bar"`, `12`).
    Literals(Vec<Vec<u8>>),
    /// The alternative whose first-byte set holds the next byte.
    AnyOf(Vec<NodeId>),
}

/// A compiled schema (nodes are stored children first).
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    pub nodes: Vec<Node>,
    pub root: NodeId,
    /// Shortest serialisation of each node, in bytes.
    pub min_len: Vec<u32>,
    /// Bytes each node's value can start with.
    pub first: Vec<[bool; 256]>,
    /// Deepest nesting of frames a value of the root can need.
    pub depth: usize,
}

/// Longest number accepted, in bytes (bounds the output).
pub(crate) const MAX_NUMBER_LEN: u32 = 24;
const UNBOUNDED: u32 = u32::MAX;
const IGNORED: [&str; 6] = [
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$comment",
];

impl Schema {
    /// Compiles `schema`.
    pub fn compile(schema: &Value) -> Result<Self> {
        let mut s = Schema {
            nodes: Vec::new(),
            min_len: Vec::new(),
            first: Vec::new(),
            depth: 0,
            root: 0,
        };
        s.root = s.add(schema, "#")?;
        s.depth = s.depth_of(s.root);
        Ok(s)
    }

    fn push(&mut self, node: Node) -> Result<NodeId> {
        let id = NodeId::try_from(self.nodes.len())
            .map_err(|_| Error::InvalidInput("JSON schema has too many nodes".into()))?;
        let (min, first) = self.measure(&node);
        self.nodes.push(node);
        self.min_len.push(min);
        self.first.push(first);
        Ok(id)
    }

    fn measure(&self, node: &Node) -> (u32, [bool; 256]) {
        let mut first = [false; 256];
        let min = match node {
            Node::Object(props) => {
                first[b'{' as usize] = true;
                let req: Vec<&Prop> = props.iter().filter(|p| p.required).collect();
                let body: u32 = req
                    .iter()
                    .map(|p| p.key.len() as u32 + 1 + self.min_len[p.node as usize])
                    .sum();
                2 + body + req.len().saturating_sub(1) as u32
            }
            Node::Array { items, min, .. } => {
                first[b'[' as usize] = true;
                2 + min * self.min_len[*items as usize] + min.saturating_sub(1)
            }
            Node::String { min, .. } => {
                first[b'"' as usize] = true;
                2 + min
            }
            Node::Number { .. } => {
                first[b'-' as usize] = true;
                for d in b'0'..=b'9' {
                    first[d as usize] = true;
                }
                1
            }
            Node::Literals(lits) => {
                for l in lits {
                    first[l[0] as usize] = true;
                }
                lits.iter().map(|l| l.len() as u32).min().unwrap_or(0)
            }
            Node::AnyOf(alts) => {
                for &a in alts {
                    for (f, g) in first.iter_mut().zip(&self.first[a as usize]) {
                        *f |= *g;
                    }
                }
                alts.iter()
                    .map(|&a| self.min_len[a as usize])
                    .min()
                    .unwrap_or(0)
            }
        };
        (min, first)
    }

    fn depth_of(&self, id: NodeId) -> usize {
        match &self.nodes[id as usize] {
            Node::Object(props) => {
                1 + props
                    .iter()
                    .map(|p| self.depth_of(p.node))
                    .max()
                    .unwrap_or(0)
            }
            Node::Array { items, .. } => 1 + self.depth_of(*items),
            Node::AnyOf(alts) => alts.iter().map(|&a| self.depth_of(a)).max().unwrap_or(1),
            _ => 1,
        }
    }

    fn add(&mut self, v: &Value, at: &str) -> Result<NodeId> {
        let obj = match v {
            Value::Object(o) => o,
            Value::Bool(true) => {
                return Err(bad(at, "`true` (any value) cannot be enforced"));
            }
            _ => return Err(bad(at, "a schema must be an object")),
        };
        for key in obj.keys() {
            if !KNOWN.contains(&key.as_str()) && !IGNORED.contains(&key.as_str()) {
                return Err(bad(at, &format!("keyword `{key}` is not supported")));
            }
        }
        if let Some(c) = obj.get("const") {
            return self.literals(&[c], at);
        }
        if let Some(values) = obj.get("enum") {
            let values: Vec<&Value> = match values {
                Value::Array(a) if !a.is_empty() => a.iter().collect(),
                _ => return Err(bad(at, "`enum` must be a non-empty array")),
            };
            return self.literals(&values, at);
        }
        let alts = obj.get("anyOf").or_else(|| obj.get("oneOf"));
        if let Some(alts) = alts {
            let Value::Array(alts) = alts else {
                return Err(bad(at, "`anyOf` must be an array"));
            };
            let ids = alts
                .iter()
                .enumerate()
                .map(|(i, a)| self.add(a, &format!("{at}/anyOf/{i}")))
                .collect::<Result<Vec<_>>>()?;
            return self.any_of(ids, at);
        }
        match obj.get("type") {
            Some(Value::String(t)) => self.typed(t, obj, at),
            Some(Value::Array(types)) => {
                let ids = types
                    .iter()
                    .map(|t| match t {
                        Value::String(t) => self.typed(t, obj, at),
                        _ => Err(bad(at, "`type` entries must be strings")),
                    })
                    .collect::<Result<Vec<_>>>()?;
                self.any_of(ids, at)
            }
            _ => Err(bad(at, "`type` (or enum/const/anyOf) is required")),
        }
    }

    fn typed(&mut self, ty: &str, obj: &Map<String, Value>, at: &str) -> Result<NodeId> {
        let uint = |key: &str, default: u32| -> Result<u32> {
            match obj.get(key) {
                None => Ok(default),
                Some(v) => v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        bad(at, &format!("`{key}` must be a small non-negative integer"))
                    }),
            }
        };
        let node = match ty {
            "object" => {
                match obj.get("additionalProperties") {
                    None | Some(Value::Bool(false)) => {}
                    Some(_) => {
                        return Err(bad(at, "only `additionalProperties: false` is supported"))
                    }
                }
                let required: Vec<&str> = match obj.get("required") {
                    None => Vec::new(),
                    Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
                    Some(_) => return Err(bad(at, "`required` must be an array of names")),
                };
                let mut props = Vec::new();
                if let Some(p) = obj.get("properties") {
                    let Value::Object(p) = p else {
                        return Err(bad(at, "`properties` must be an object"));
                    };
                    for (name, sub) in p {
                        let node = self.add(sub, &format!("{at}/properties/{name}"))?;
                        let key = serde_json::to_vec(name)
                            .map_err(|e| bad(at, &format!("property name: {e}")))?;
                        props.push(Prop {
                            key,
                            node,
                            required: required.contains(&name.as_str()),
                        });
                    }
                }
                if let Some(missing) = required.iter().find(|r| {
                    !props
                        .iter()
                        .any(|p| p.key[1..p.key.len() - 1] == *r.as_bytes())
                }) {
                    return Err(bad(at, &format!("required `{missing}` is not a property")));
                }
                // serde_json maps are sorted by key: emit the required properties in the
                // order `required` lists them (the natural order a schema author writes),
                // then the optional ones.
                props.sort_by_key(|p| {
                    let name = &p.key[1..p.key.len() - 1];
                    required
                        .iter()
                        .position(|r| r.as_bytes() == name)
                        .unwrap_or(usize::MAX)
                });
                if props.len() > 64 {
                    return Err(bad(at, "more than 64 properties"));
                }
                Node::Object(props)
            }
            "array" => {
                let items = match obj.get("items") {
                    Some(i) => self.add(i, &format!("{at}/items"))?,
                    None => return Err(bad(at, "arrays need `items`")),
                };
                let (min, max) = (uint("minItems", 0)?, uint("maxItems", UNBOUNDED)?);
                if min > max {
                    return Err(bad(at, "minItems > maxItems"));
                }
                Node::Array { items, min, max }
            }
            "string" => {
                let (min, max) = (uint("minLength", 0)?, uint("maxLength", UNBOUNDED)?);
                if min > max {
                    return Err(bad(at, "minLength > maxLength"));
                }
                Node::String { min, max }
            }
            "number" => Node::Number { integer: false },
            "integer" => Node::Number { integer: true },
            "boolean" => Node::Literals(vec![b"true".to_vec(), b"false".to_vec()]),
            "null" => Node::Literals(vec![b"null".to_vec()]),
            other => return Err(bad(at, &format!("unknown type `{other}`"))),
        };
        self.push(node)
    }

    fn literals(&mut self, values: &[&Value], at: &str) -> Result<NodeId> {
        if values.len() > 64 {
            return Err(bad(at, "more than 64 enum values"));
        }
        let mut lits = Vec::new();
        for v in values {
            if v.is_object() || v.is_array() {
                return Err(bad(at, "enum values must be scalars"));
            }
            let bytes = serde_json::to_vec(v).map_err(|e| bad(at, &e.to_string()))?;
            if lits
                .iter()
                .any(|l: &Vec<u8>| l.starts_with(&bytes) || bytes.starts_with(l))
            {
                return Err(bad(at, "an enum value is a prefix of another"));
            }
            lits.push(bytes);
        }
        self.push(Node::Literals(lits))
    }

    fn any_of(&mut self, ids: Vec<NodeId>, at: &str) -> Result<NodeId> {
        if ids.is_empty() {
            return Err(bad(at, "empty anyOf"));
        }
        if ids.len() == 1 {
            return Ok(ids[0]);
        }
        let mut seen = [false; 256];
        for &id in &ids {
            for (b, f) in self.first[id as usize].iter().enumerate() {
                if *f && std::mem::replace(&mut seen[b], true) {
                    return Err(bad(
                        at,
                        &format!(
                            "alternatives both start with byte {:?}; they must start differently",
                            b as u8 as char
                        ),
                    ));
                }
            }
        }
        self.push(Node::AnyOf(ids))
    }
}

const KNOWN: [&str; 13] = [
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "enum",
    "const",
    "anyOf",
    "oneOf",
];

fn bad(at: &str, what: &str) -> Error {
    Error::InvalidInput(format!("JSON schema at {at}: {what}"))
}
