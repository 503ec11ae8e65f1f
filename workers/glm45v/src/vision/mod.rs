//! The vision tower: its grid-dependent host inputs, the ONNX Runtime session that runs it, the
//! hand-off of its rows to candle with the 3-D positions, and image prompts end to end.

pub mod inputs;
pub mod merge;
pub mod onnx;
pub mod prompt;
