//! `folio ask` end to end on the tiny GLM-4.5V fixture (random weights, so the text is noise; what
//! is checked is that images, prompt, vision tower and decoder run through and report properly),
//! and its clear errors for a missing or incomplete model directory.

mod common;

use common::*;
use folio_test_support::corpus;

#[test]
fn ask_runs_the_tiny_model_on_two_images_and_draws() {
    let out_png = tempfile::tempdir()
        .expect("tempdir")
        .keep()
        .join("boxes.png");
    let chart = corpus("charts/vegalite_layer_falkensee.png");
    let table = corpus("tables/pubtabnet_PMC5198506_004_00.png");
    let out = ask_tiny(&[
        "--dtype",
        "f32",
        "--max-new-tokens",
        "12",
        "--thinking",
        "--draw",
        out_png.to_str().expect("utf-8"),
        chart.to_str().expect("utf-8"),
        table.to_str().expect("utf-8"),
        "Where is the legend?",
    ]);
    assert!(out.status.success(), "folio ask failed: {}", stderr(&out));
    let drawn = image::open(&out_png).expect("--draw wrote a PNG");
    assert_eq!((drawn.width(), drawn.height()), (706, 347));
    assert!(stderr(&out).contains("boxes"), "{}", stderr(&out));
}

#[test]
fn ask_names_what_a_model_directory_lacks() {
    let image = corpus("charts/vegalite_bar.png");
    let img = image.to_str().expect("utf-8");
    check_bad_model_dirs(|model| run(&["ask", "--model", model, img, "hi"]));

    let out = ask_tiny(&["/nonexistent.png", "hi"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}
