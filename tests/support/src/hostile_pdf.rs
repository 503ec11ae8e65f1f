//! Hostile PDFs, built byte by byte for the render-limit tests: each is a small file that is
//! expensive to render in its own way. Valid PDF syntax throughout (a correct cross-reference
//! table), so every one gets past a parser and reaches rendering.
//!
//! - [`heavy_shared_xobject`]: one form XObject of many path segments, drawn on every page;
//! - [`nested_forms`]: forms that draw the next level `fanout` times (`fanout^depth` draws);
//! - [`huge_page`]: a page whose MediaBox declares an enormous size;
//! - [`flate_bomb`]: a content stream of a few MiB that inflates to gigabytes (two Flate layers).

use std::fmt::Write as _;
use std::io::Write as _;

/// A PDF of `objects` (object `n` is `objects[n - 1]`, a full `<<…>>` or stream body), with
/// object 1 the catalog.
pub fn assemble(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for offset in offsets {
        let _ = writeln!(table, "{offset:010} 00000 n ");
    }
    let _ = write!(
        table,
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    );
    out.extend_from_slice(table.as_bytes());
    out
}

/// A stream object: `dict` entries (without `/Length`) and its (already encoded) data.
pub fn stream(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\nendstream");
    out
}

/// Catalog (1), page tree (2) and `contents.len()` pages (objects 3.. and their content
/// streams after them), each page `width`×`height` pt with `resources`; `extra` objects are
/// appended after the pages (numbered from `first_extra()`).
struct Doc {
    width: f64,
    height: f64,
    resources: String,
    contents: Vec<Vec<u8>>,
}

impl Doc {
    fn first_extra(pages: usize) -> usize {
        3 + 2 * pages
    }

    fn build(self, extra: Vec<Vec<u8>>) -> Vec<u8> {
        let n = self.contents.len();
        let kids: String = (0..n).map(|i| format!("{} 0 R ", 3 + i)).collect();
        let mut objects = vec![
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            format!("<< /Type /Pages /Kids [{kids}] /Count {n} >>").into_bytes(),
        ];
        for i in 0..n {
            objects.push(
                format!(
                    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {} {}] /Resources {} /Contents {} 0 R >>",
                    self.width,
                    self.height,
                    self.resources,
                    3 + n + i
                )
                .into_bytes(),
            );
        }
        for content in &self.contents {
            objects.push(stream("", content));
        }
        objects.extend(extra);
        assemble(&objects)
    }
}

/// Deterministic pseudo-random numbers (xorshift), so the files are the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % u64::from(below)) as u32
    }
}

/// `pages` A4 pages, each drawing one shared form XObject of `segments` stroked line segments
/// (random, across the page) `draws` times. The file stays small (the form is stored once);
/// rendering costs pages × draws × segments.
pub fn heavy_shared_xobject(pages: usize, segments: usize, draws: usize) -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut path = String::with_capacity(segments * 24);
    for _ in 0..segments {
        let _ = writeln!(
            path,
            "{} {} m {} {} l S",
            rng.next(595),
            rng.next(842),
            rng.next(595),
            rng.next(842)
        );
    }
    let form = Doc::first_extra(pages);
    let content = "/X0 Do\n".repeat(draws).into_bytes();
    let doc = Doc {
        width: 595.0,
        height: 842.0,
        resources: format!("<< /XObject << /X0 {form} 0 R >> >>"),
        contents: vec![content; pages],
    };
    let xobject = stream(
        "/Type /XObject /Subtype /Form /BBox [0 0 595 842]",
        path.as_bytes(),
    );
    doc.build(vec![xobject])
}

/// One page whose content draws form 1; form `k` draws form `k + 1` `fanout` times (slightly
/// shifted), `depth` levels deep; the last one strokes a line. `fanout^depth` line draws.
pub fn nested_forms(depth: usize, fanout: usize) -> Vec<u8> {
    let first = Doc::first_extra(1);
    let mut forms = Vec::with_capacity(depth);
    for level in 0..depth {
        let (resources, body) = if level + 1 < depth {
            let next = first + level + 1;
            let draws: String = (0..fanout)
                .map(|i| format!("q 1 0 0 1 {} 0 cm /F Do Q\n", i % 3))
                .collect();
            (
                format!("/Resources << /XObject << /F {next} 0 R >> >>"),
                draws,
            )
        } else {
            (String::new(), "10 10 m 500 800 l S\n".to_owned())
        };
        forms.push(stream(
            &format!("/Type /XObject /Subtype /Form /BBox [0 0 595 842] {resources}"),
            body.as_bytes(),
        ));
    }
    let doc = Doc {
        width: 595.0,
        height: 842.0,
        resources: format!("<< /XObject << /F {first} 0 R >> >>"),
        contents: vec![b"/F Do\n".to_vec()],
    };
    doc.build(forms)
}

/// One page of `width`×`height` pt (the spec's largest page is 14,400 pt a side) with a line
/// on it.
pub fn huge_page(width: f64, height: f64) -> Vec<u8> {
    let doc = Doc {
        width,
        height,
        resources: "<< >>".into(),
        contents: vec![b"0 0 m 1000 1000 l S\n".to_vec()],
    };
    doc.build(Vec::new())
}

/// One page whose content stream inflates to `inflated_mib` MiB of spaces (valid, empty
/// content), stored as two Flate layers so that the file stays small.
pub fn flate_bomb(inflated_mib: usize) -> Vec<u8> {
    let chunk = vec![b' '; 1 << 20];
    let mut inner = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..inflated_mib {
        inner.write_all(&chunk).expect("deflate to memory");
    }
    let inner = inner.finish().expect("deflate to memory");
    let mut outer = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    outer.write_all(&inner).expect("deflate to memory");
    let data = outer.finish().expect("deflate to memory");
    let content = stream("/Filter [/FlateDecode /FlateDecode]", &data);
    let mut objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << >> /Contents 4 0 R >>"
            .to_vec(),
    ];
    objects.push(content);
    assemble(&objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_small_and_well_formed() {
        for pdf in [
            heavy_shared_xobject(3, 100, 2),
            nested_forms(4, 2),
            huge_page(14_400.0, 14_400.0),
            flate_bomb(8),
        ] {
            assert!(pdf.starts_with(b"%PDF-1.7"));
            assert!(pdf.ends_with(b"%%EOF\n"));
            let text = String::from_utf8_lossy(&pdf);
            let startxref: usize = text
                .rsplit("startxref\n")
                .next()
                .and_then(|t| t.lines().next())
                .and_then(|n| n.parse().ok())
                .expect("startxref");
            assert!(pdf[startxref..].starts_with(b"xref\n"));
        }
        assert!(
            flate_bomb(64).len() < 64 * 1024,
            "two Flate layers keep it small"
        );
    }
}
