//! Where the native libraries and models live (`scripts/setup` fills it), and the check that they are
//! there before anything tries to load them: a missing piece is one clear message, never a dlopen error.

use std::path::{Path, PathBuf};

/// The setup command printed when something is missing.
pub const SETUP_HINT: &str = "run `scripts/setup` (it downloads the pinned wheels into the runtime folder; set FOLIO_RUNTIME_DIR to use another folder)";

/// Runtime files that are not there: the message names them and the command that fetches them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingRuntime(pub String);

impl std::fmt::Display for MissingRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MissingRuntime {}

#[derive(Debug, Clone)]
pub struct RuntimeLayout {
    root: PathBuf,
}

impl RuntimeLayout {
    /// `dir`, or `~/.cache/folio`.
    pub fn new(dir: Option<PathBuf>) -> Self {
        let root = dir.unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            home.join(".cache").join("folio")
        });
        RuntimeLayout { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn pdfium(&self) -> PathBuf {
        self.root.join("lib/libpdfium.so")
    }
    pub fn onnxruntime(&self) -> PathBuf {
        self.root.join("lib/libonnxruntime.so.1.31.1")
    }
    pub fn models(&self) -> PathBuf {
        self.root.join("models")
    }

    /// Everything the CPU pipeline (`ingest` + `ocr` engine) loads.
    pub fn ocr_pieces(&self) -> Vec<PathBuf> {
        let m = self.models();
        vec![
            self.pdfium(),
            self.onnxruntime(),
            m.join("PP-OCRv6_det_small.onnx"),
            m.join("PP-OCRv6_rec_small.onnx"),
            m.join("layout_cdla.onnx"),
            m.join("en_ppstructure_mobile_v2_SLANet.onnx"),
        ]
    }

    /// `Err` naming every missing file and the command that fetches them (exit 4 in the CLI).
    pub fn check(&self, pieces: &[PathBuf]) -> Result<(), MissingRuntime> {
        let missing: Vec<String> = pieces
            .iter()
            .filter(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(MissingRuntime(format!(
                "runtime files missing: {}; {SETUP_HINT}",
                missing.join(", ")
            )))
        }
    }
}
