//! Table structure: SLANet predicts HTML structure tokens and one box per cell
//! ([`slanet`]); [`grid`] turns them into a row/column grid, fills cells with OCR lines and
//! writes the HTML. [`text_grid`] finds tables the layout model missed from the lines alone.

pub mod grid;
pub mod slanet;
pub mod text_grid;
