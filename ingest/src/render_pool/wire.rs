//! The protocol between the pool and a render process, over the child's stdin/stdout: frames of
//! a little-endian `u32` length, a one-byte kind (`J`: a JSON [`Request`] or [`Reply`], `B`: raw
//! bytes that belong to the JSON frame before it) and the payload. One request at a time; the
//! child answers a request with any number of [`Reply::Page`] (each followed by its RGB pixels)
//! and then exactly one [`Reply::Summary`], [`Reply::Done`] or [`Reply::Failed`].

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::{IngestConfig, IngestError};

/// Largest frame accepted either way: a source sent inline or one page's pixels.
pub const MAX_FRAME: usize = 1 << 31;

const JSON: u8 = b'J';
const BYTES: u8 = b'B';

/// What the pool asks of a render process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub op: Op,
    /// A file the child opens itself; `None`: the source follows as a `B` frame.
    pub path: Option<String>,
    pub password: Option<String>,
    pub dpi: u32,
    pub max_page_pixels: u64,
    pub max_pages: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Validate: open, count, size and load (parse) every page; answered with a summary.
    Inspect,
    /// Render `pages` (empty: all), one [`Reply::Page`] each, then [`Reply::Done`].
    Render { pages: Vec<u32> },
}

impl Request {
    pub fn new(op: Op, cfg: &IngestConfig, password: Option<&str>, path: Option<String>) -> Self {
        Request {
            op,
            path,
            password: password.map(str::to_owned),
            dpi: cfg.dpi,
            max_page_pixels: cfg.max_page_pixels,
            max_pages: cfg.max_pages,
        }
    }
}

/// What a render process answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// A page starts: `width`×`height` RGB pixels follow as a `B` frame.
    Page {
        page: u32,
        dpi: Option<u32>,
        width: u32,
        height: u32,
    },
    /// Validation passed.
    Summary { page_count: u32 },
    /// Every page asked for was sent.
    Done,
    /// The request failed; the process stays usable.
    Failed(WireError),
}

/// An [`IngestError`] as it crosses the process boundary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireError {
    pub code: String,
    pub message: String,
    pub input: bool,
    pub runtime: bool,
    /// The page at fault, for the render limits' own errors.
    pub page: Option<u32>,
}

impl From<&IngestError> for WireError {
    fn from(e: &IngestError) -> Self {
        let page = match e {
            IngestError::RenderTooLarge { page, .. } => *page,
            _ => None,
        };
        WireError {
            code: e.code().into(),
            message: e.to_string(),
            input: e.is_input_error(),
            runtime: e.is_runtime_error(),
            page,
        }
    }
}

impl WireError {
    /// The error again on the pool's side (`limit_mib` fills in a memory-limit error).
    pub fn into_error(self, limit_mib: u64) -> IngestError {
        match self.code.as_str() {
            "render_too_large" => IngestError::RenderTooLarge {
                limit_mib,
                page: self.page,
                detail: self
                    .message
                    .split_once(": ")
                    .map(|(_, d)| d.to_owned())
                    .unwrap_or_default(),
            },
            code => IngestError::Remote {
                code: crate::error::known_code(code),
                message: self.message,
                input: self.input,
                runtime: self.runtime,
            },
        }
    }
}

/// One frame read back.
#[derive(Debug)]
pub enum Frame {
    Json(Vec<u8>),
    Bytes(Vec<u8>),
}

pub fn write_json<T: Serialize>(w: &mut impl Write, value: &T) -> io::Result<()> {
    let body = serde_json::to_vec(value).map_err(io::Error::other)?;
    write_frame(w, JSON, &body)
}

pub fn write_bytes(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    write_frame(w, BYTES, bytes)
}

fn write_frame(w: &mut impl Write, kind: u8, body: &[u8]) -> io::Result<()> {
    if body.len() >= MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {} bytes is above the protocol limit", body.len()),
        ));
    }
    let len = u32::try_from(body.len() + 1).map_err(io::Error::other)?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(&[kind])?;
    w.write_all(body)?;
    w.flush()
}

/// The next frame; `Ok(None)` at a clean end of stream (before a frame starts).
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Frame>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad frame length {len}"),
        ));
    }
    let mut kind = [0u8; 1];
    r.read_exact(&mut kind)?;
    let mut body = Vec::new();
    r.take((len - 1) as u64).read_to_end(&mut body)?;
    if body.len() != len - 1 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    match kind[0] {
        JSON => Ok(Some(Frame::Json(body))),
        BYTES => Ok(Some(Frame::Bytes(body))),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown frame kind {other}"),
        )),
    }
}

/// Parse a JSON frame's body.
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> io::Result<T> {
    serde_json::from_slice(body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_json(&mut buf, &Reply::Summary { page_count: 7 }).unwrap();
        write_bytes(&mut buf, &[1, 2, 3]).unwrap();
        let mut r = &buf[..];
        let Some(Frame::Json(j)) = read_frame(&mut r).unwrap() else {
            panic!("json frame expected")
        };
        assert!(matches!(
            parse::<Reply>(&j).unwrap(),
            Reply::Summary { page_count: 7 }
        ));
        assert!(matches!(read_frame(&mut r).unwrap(), Some(Frame::Bytes(b)) if b == [1, 2, 3]));
        assert!(read_frame(&mut r).unwrap().is_none());
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        let mut zero = &[0u8, 0, 0, 0][..];
        assert!(read_frame(&mut zero).is_err());
        let mut cut = &[10u8, 0, 0, 0, b'J', b'{'][..];
        assert!(read_frame(&mut cut).is_err());
        let mut kind = &[1u8, 0, 0, 0, b'X'][..];
        assert!(read_frame(&mut kind).is_err());
    }

    #[test]
    fn errors_keep_code_and_class() {
        let e = IngestError::EncryptedPdf;
        let back = WireError::from(&e).into_error(512);
        assert_eq!(back.code(), "encrypted_pdf");
        assert!(back.is_input_error());
        assert_eq!(back.to_string(), e.to_string());
        let big = IngestError::RenderTooLarge {
            limit_mib: 512,
            page: Some(3),
            detail: "a 40000×40000 bitmap".into(),
        };
        let back = WireError::from(&big).into_error(512);
        assert_eq!(back.code(), "render_too_large");
        assert_eq!(back.to_string(), big.to_string());
    }
}
