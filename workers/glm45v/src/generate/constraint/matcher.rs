//! Byte-level pushdown matcher of a compiled [`Schema`]: compact JSON, one byte at a time.
//!
//! The state is a fixed-size stack of small `Copy` frames, so trying a token on a copy of the
//! state costs no allocation. [`State::min_to_complete`] is the exact number of bytes the
//! shortest completion still needs; with one-byte tokens in the vocabulary it bounds the tokens
//! too, which lets the constraint finish the document within a token budget.

use super::schema::{Node, NodeId, Schema, MAX_NUMBER_LEN};

/// Deepest frame stack supported.
pub(crate) const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
    /// Two exponent digits: the most (f64 overflows past e308; `e99` is plenty).
    ExpDigits2,
}

impl Num {
    fn is_final(self) -> bool {
        matches!(
            self,
            Num::Zero | Num::Int | Num::Frac | Num::ExpDigits | Num::ExpDigits2
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjAt {
    /// After `{`: a key or `}`.
    Open,
    /// After `,`: a key.
    Comma,
    /// Inside a key: `alive` props still match its first `pos` bytes.
    Key { alive: u64, pos: u16 },
    /// After a whole key: `:`.
    Colon { prop: u16 },
    /// After a value: `,` or `}`.
    Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrAt {
    Open,
    Comma,
    Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// A value of the node, not started.
    Value(NodeId),
    Literal {
        node: NodeId,
        alive: u64,
        pos: u16,
    },
    Str {
        node: NodeId,
        chars: u32,
        /// 0 = none, 1 = after `\`, 2..=5 = hex digits of `\u` left + 1.
        esc: u8,
        /// UTF-8 continuation bytes still expected, and the range of the next one.
        cont: u8,
        lo: u8,
        hi: u8,
    },
    Num {
        integer: bool,
        at: Num,
        len: u8,
    },
    Obj {
        node: NodeId,
        next: u16,
        at: ObjAt,
    },
    Arr {
        node: NodeId,
        count: u32,
        at: ArrAt,
    },
}

/// The top string frame, see [`State::string_top`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct StringTop {
    pub chars: u32,
    pub min: u32,
    pub max: u32,
    /// Bytes the frames below need to complete once the string is closed.
    pub below: u32,
}

impl StringTop {
    /// Bytes the shortest completion needs after `more` plain characters.
    pub fn min_to_complete_after(&self, more: u32) -> u32 {
        self.below + 1 + self.min.saturating_sub(self.chars + more)
    }
}

/// Where the matcher is; `Copy`, so trying bytes on a copy is cheap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct State {
    frames: [Frame; MAX_DEPTH],
    len: usize,
}

impl State {
    /// Before the root value.
    pub fn new(s: &Schema) -> Self {
        State {
            frames: [Frame::Value(s.root); MAX_DEPTH],
            len: 1,
        }
    }

    /// True when a whole value has been matched (no byte may follow).
    pub fn is_complete(&self) -> bool {
        self.len == 0
    }

    /// The top frame when it is inside a string between characters (no escape or UTF-8
    /// sequence open): the fast path of the mask, where a token of plain characters only
    /// changes the character count.
    pub fn string_top(&self, s: &Schema) -> Option<StringTop> {
        let Some(Frame::Str {
            node,
            chars,
            esc: 0,
            cont: 0,
            ..
        }) = self.frames[..self.len].last()
        else {
            return None;
        };
        let Node::String { min, max } = s.nodes[*node as usize] else {
            return None;
        };
        let below = self.frames[..self.len - 1]
            .iter()
            .map(|f| frame_rest(s, f))
            .sum();
        Some(StringTop {
            chars: *chars,
            min,
            max,
            below,
        })
    }

    /// Feeds every byte of `bytes`; false (state then unspecified) when one is not allowed.
    pub fn feed(&mut self, s: &Schema, bytes: &[u8]) -> bool {
        bytes.iter().all(|&b| self.step(s, b))
    }

    /// Byte `b` after a value inside the container at `top`: its closing byte `close` pops it
    /// when `can_close`; a `,` turns it into `comma` when `more` (the caller checked the comma and
    /// that another member may follow).
    fn after_value(
        &mut self,
        top: usize,
        b: u8,
        close: u8,
        can_close: bool,
        more: bool,
        comma: Frame,
    ) -> bool {
        if b == close && can_close {
            self.len -= 1;
            return true;
        }
        if b == b',' && more {
            self.frames[top] = comma;
            return true;
        }
        false
    }

    fn push(&mut self, f: Frame) -> bool {
        if self.len == MAX_DEPTH {
            return false;
        }
        self.frames[self.len] = f;
        self.len += 1;
        true
    }

    /// Feeds one byte.
    pub fn step(&mut self, s: &Schema, b: u8) -> bool {
        loop {
            if self.len == 0 {
                return false;
            }
            let top = self.len - 1;
            match self.frames[top] {
                Frame::Value(id) => {
                    if !s.first[id as usize][b as usize] {
                        return false;
                    }
                    self.frames[top] = match &s.nodes[id as usize] {
                        Node::AnyOf(alts) => {
                            let Some(&alt) =
                                alts.iter().find(|&&a| s.first[a as usize][b as usize])
                            else {
                                return false;
                            };
                            Frame::Value(alt)
                        }
                        Node::Object(_) => Frame::Obj {
                            node: id,
                            next: 0,
                            at: ObjAt::Open,
                        },
                        Node::Array { .. } => Frame::Arr {
                            node: id,
                            count: 0,
                            at: ArrAt::Open,
                        },
                        Node::String { .. } => Frame::Str {
                            node: id,
                            chars: 0,
                            esc: 0,
                            cont: 0,
                            lo: 0,
                            hi: 0,
                        },
                        Node::Number { integer } => Frame::Num {
                            integer: *integer,
                            at: Num::Minus,
                            len: 0,
                        },
                        Node::Literals(_) => Frame::Literal {
                            node: id,
                            alive: u64::MAX,
                            pos: 0,
                        },
                    };
                    // Objects, arrays and strings consumed their opening byte; the others
                    // match it in their own state below.
                    match self.frames[top] {
                        Frame::Obj { .. } | Frame::Arr { .. } | Frame::Str { .. } => return true,
                        Frame::Num { .. } => {
                            self.frames[top] = match b {
                                b'-' => Frame::Num {
                                    integer: matches!(
                                        s.nodes[id as usize],
                                        Node::Number { integer: true }
                                    ),
                                    at: Num::Minus,
                                    len: 1,
                                },
                                _ => Frame::Num {
                                    integer: matches!(
                                        s.nodes[id as usize],
                                        Node::Number { integer: true }
                                    ),
                                    at: if b == b'0' { Num::Zero } else { Num::Int },
                                    len: 1,
                                },
                            };
                            return true;
                        }
                        _ => continue,
                    }
                }
                Frame::Literal { node, alive, pos } => {
                    let Node::Literals(lits) = &s.nodes[node as usize] else {
                        return false;
                    };
                    let mut next = 0u64;
                    let mut done = false;
                    for (i, l) in lits.iter().enumerate() {
                        if alive & (1 << i) != 0 && l.get(pos as usize) == Some(&b) {
                            next |= 1 << i;
                            done |= l.len() == pos as usize + 1;
                        }
                    }
                    if next == 0 {
                        return false;
                    }
                    if done {
                        // No literal is a prefix of another: this one is the match.
                        self.len -= 1;
                    } else {
                        self.frames[top] = Frame::Literal {
                            node,
                            alive: next,
                            pos: pos + 1,
                        };
                    }
                    return true;
                }
                Frame::Str {
                    node,
                    chars,
                    esc,
                    cont,
                    lo,
                    hi,
                } => {
                    let Node::String { min, max } = s.nodes[node as usize] else {
                        return false;
                    };
                    let f = &mut self.frames[top];
                    let string = |chars, esc, cont, lo, hi| Frame::Str {
                        node,
                        chars,
                        esc,
                        cont,
                        lo,
                        hi,
                    };
                    if cont > 0 {
                        if b < lo || b > hi {
                            return false;
                        }
                        *f = string(chars, esc, cont - 1, 0x80, 0xBF);
                        return true;
                    }
                    if esc == 1 {
                        let e = match b {
                            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 0,
                            b'u' => 5,
                            _ => return false,
                        };
                        *f = string(chars, e, cont, lo, hi);
                        return true;
                    }
                    if esc > 1 {
                        if !b.is_ascii_hexdigit() {
                            return false;
                        }
                        let e = if esc == 2 { 0 } else { esc - 1 };
                        *f = string(chars, e, cont, lo, hi);
                        return true;
                    }
                    if b == b'"' {
                        if chars < min {
                            return false;
                        }
                        self.len -= 1;
                        return true;
                    }
                    if chars >= max {
                        return false;
                    }
                    let (esc, cont, lo, hi) = match b {
                        0..=0x1F => return false,
                        b'\\' => (1, 0, 0, 0),
                        0x20..=0x7F => (0, 0, 0, 0),
                        0xC2..=0xDF => (0, 1, 0x80, 0xBF),
                        0xE0 => (0, 2, 0xA0, 0xBF),
                        0xED => (0, 2, 0x80, 0x9F),
                        0xE1..=0xEF => (0, 2, 0x80, 0xBF),
                        0xF0 => (0, 3, 0x90, 0xBF),
                        0xF1..=0xF3 => (0, 3, 0x80, 0xBF),
                        0xF4 => (0, 3, 0x80, 0x8F),
                        _ => return false,
                    };
                    *f = string(chars + 1, esc, cont, lo, hi);
                    return true;
                }
                Frame::Num { integer, at, len } => {
                    let digit = b.is_ascii_digit();
                    let next = match (at, b) {
                        (Num::Minus, b'0') => Some(Num::Zero),
                        (Num::Minus, _) if digit => Some(Num::Int),
                        (Num::Int, _) if digit => Some(Num::Int),
                        (Num::Zero | Num::Int, b'.') if !integer => Some(Num::Dot),
                        (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') if !integer => {
                            Some(Num::Exp)
                        }
                        (Num::Dot | Num::Frac, _) if digit => Some(Num::Frac),
                        (Num::Exp, b'+' | b'-') => Some(Num::ExpSign),
                        (Num::Exp | Num::ExpSign, _) if digit => Some(Num::ExpDigits),
                        (Num::ExpDigits, _) if digit => Some(Num::ExpDigits2),
                        _ => None,
                    };
                    // Every non-final state needs exactly one more byte to become final: never
                    // enter one that could not be finished within the length limit.
                    let room =
                        |n: Num| u32::from(len) + 1 + u32::from(!n.is_final()) <= MAX_NUMBER_LEN;
                    match next {
                        Some(n) if room(n) => {
                            self.frames[top] = Frame::Num {
                                integer,
                                at: n,
                                len: len + 1,
                            };
                            return true;
                        }
                        // The number ended: the byte belongs to the enclosing value.
                        _ if at.is_final() => {
                            self.len -= 1;
                            continue;
                        }
                        _ => return false,
                    }
                }
                Frame::Obj { node, next, at } => {
                    let Node::Object(props) = &s.nodes[node as usize] else {
                        return false;
                    };
                    let rest_required = props[next as usize..].iter().any(|p| p.required);
                    match at {
                        ObjAt::Open | ObjAt::Comma => {
                            if b == b'}' && at == ObjAt::Open && !rest_required {
                                self.len -= 1;
                                return true;
                            }
                            if b != b'"' {
                                return false;
                            }
                            let alive = candidates(props, next);
                            if alive == 0 {
                                return false;
                            }
                            self.frames[top] = Frame::Obj {
                                node,
                                next,
                                at: ObjAt::Key { alive, pos: 1 },
                            };
                            return true;
                        }
                        ObjAt::Key { alive, pos } => {
                            let mut still = 0u64;
                            let mut whole = None;
                            for (i, p) in props.iter().enumerate() {
                                if alive & (1 << i) != 0 && p.key.get(pos as usize) == Some(&b) {
                                    still |= 1 << i;
                                    if p.key.len() == pos as usize + 1 {
                                        whole = Some(i as u16);
                                    }
                                }
                            }
                            self.frames[top] = Frame::Obj {
                                node,
                                next,
                                at: match whole {
                                    Some(prop) => ObjAt::Colon { prop },
                                    None if still != 0 => ObjAt::Key {
                                        alive: still,
                                        pos: pos + 1,
                                    },
                                    None => return false,
                                },
                            };
                            return true;
                        }
                        ObjAt::Colon { prop } => {
                            if b != b':' {
                                return false;
                            }
                            self.frames[top] = Frame::Obj {
                                node,
                                next: prop + 1,
                                at: ObjAt::Value,
                            };
                            return self.push(Frame::Value(props[prop as usize].node));
                        }
                        ObjAt::Value => {
                            let comma = Frame::Obj {
                                node,
                                next,
                                at: ObjAt::Comma,
                            };
                            let more = b == b',' && candidates(props, next) != 0;
                            return self.after_value(top, b, b'}', !rest_required, more, comma);
                        }
                    }
                }
                Frame::Arr { node, count, at } => {
                    let Node::Array { items, min, max } = s.nodes[node as usize] else {
                        return false;
                    };
                    match at {
                        ArrAt::Open | ArrAt::Comma => {
                            if at == ArrAt::Open && b == b']' && min == 0 {
                                self.len -= 1;
                                return true;
                            }
                            if count >= max {
                                return false;
                            }
                            self.frames[top] = Frame::Arr {
                                node,
                                count: count + 1,
                                at: ArrAt::Value,
                            };
                            if !self.push(Frame::Value(items)) {
                                return false;
                            }
                            continue;
                        }
                        ArrAt::Value => {
                            let comma = Frame::Arr {
                                node,
                                count,
                                at: ArrAt::Comma,
                            };
                            return self.after_value(
                                top,
                                b,
                                b']',
                                count >= min,
                                count < max,
                                comma,
                            );
                        }
                    }
                }
            }
        }
    }

    /// Bytes of the shortest way to complete the value from here.
    pub fn min_to_complete(&self, s: &Schema) -> u32 {
        self.frames[..self.len]
            .iter()
            .map(|f| frame_rest(s, f))
            .sum()
    }
}

/// Props that may come next from `next` on: the optional ones up to the first required one.
fn candidates(props: &[super::schema::Prop], next: u16) -> u64 {
    let mut mask = 0u64;
    for (i, p) in props.iter().enumerate().skip(next as usize) {
        mask |= 1 << i;
        if p.required {
            break;
        }
    }
    mask
}

/// Bytes of required props from `from` on, each preceded by `,`.
fn required_after(s: &Schema, props: &[super::schema::Prop], from: usize) -> u32 {
    props[from.min(props.len())..]
        .iter()
        .filter(|p| p.required)
        .map(|p| 1 + p.key.len() as u32 + 1 + s.min_len[p.node as usize])
        .sum()
}

fn frame_rest(s: &Schema, f: &Frame) -> u32 {
    match *f {
        Frame::Value(id) => s.min_len[id as usize],
        Frame::Literal { node, alive, pos } => match &s.nodes[node as usize] {
            Node::Literals(lits) => lits
                .iter()
                .enumerate()
                .filter(|(i, _)| alive & (1 << i) != 0)
                .map(|(_, l)| (l.len() - pos as usize) as u32)
                .min()
                .unwrap_or(0),
            _ => 0,
        },
        Frame::Str {
            node,
            chars,
            esc,
            cont,
            ..
        } => {
            let min = match s.nodes[node as usize] {
                Node::String { min, .. } => min,
                _ => 0,
            };
            let esc_rest = match esc {
                0 => 0,
                1 => 1,
                e => (e - 1) as u32,
            };
            1 + cont as u32 + esc_rest + min.saturating_sub(chars)
        }
        Frame::Num { at, .. } => u32::from(!at.is_final()),
        Frame::Obj { node, next, at } => {
            let Node::Object(props) = &s.nodes[node as usize] else {
                return 0;
            };
            let next = next as usize;
            match at {
                ObjAt::Open => {
                    // No leading comma on the first required prop.
                    1 + required_after(s, props, next).saturating_sub(1)
                }
                ObjAt::Value => 1 + required_after(s, props, next),
                ObjAt::Comma => {
                    let req = required_after(s, props, next);
                    if req > 0 {
                        req
                    } else {
                        // One optional prop must follow the comma.
                        1 + props[next..]
                            .iter()
                            .map(|p| p.key.len() as u32 + 1 + s.min_len[p.node as usize])
                            .min()
                            .unwrap_or(0)
                    }
                }
                ObjAt::Key { alive, pos } => props
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| alive & (1 << i) != 0)
                    .map(|(i, p)| {
                        (p.key.len() - pos as usize) as u32
                            + 1
                            + s.min_len[p.node as usize]
                            + 1
                            + required_after(s, props, i + 1)
                    })
                    .min()
                    .unwrap_or(0),
                ObjAt::Colon { prop } => {
                    let p = &props[prop as usize];
                    1 + s.min_len[p.node as usize] + 1 + required_after(s, props, prop as usize + 1)
                }
            }
        }
        Frame::Arr { node, count, at } => {
            let Node::Array { items, min, .. } = s.nodes[node as usize] else {
                return 0;
            };
            let item = s.min_len[items as usize];
            match at {
                ArrAt::Open => {
                    if min == 0 {
                        1
                    } else {
                        min * item + (min - 1) + 1
                    }
                }
                ArrAt::Value => min.saturating_sub(count) * (1 + item) + 1,
                ArrAt::Comma => item + min.saturating_sub(count + 1) * (1 + item) + 1,
            }
        }
    }
}
