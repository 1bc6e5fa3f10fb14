//! Request heads checked before hyper reads them, so that a head it would
//! refuse with a bare status and an empty body is answered in Bento's JSON.
//!
//! hyper answers a head it cannot parse (a NUL in the target, a header line
//! without a colon, two different `Content-Length`s: 400; a target over
//! 65,534 bytes: 414; a head over its 400 KiB buffer or with more than 100
//! headers: 431) by itself, and offers no way to give that answer a body.
//! The [`Gate`] follows a connection's bytes in the order hyper reads them:
//! each request head is held back until it is whole (or as large as hyper
//! would let it grow) and checked as hyper checks it (httparse with the same
//! limits, then hyper's rules for the target, the method and the body's
//! length); the body that follows passes as it comes, counted by its
//! `Content-Length` or followed chunk by chunk, so that the next head of a
//! keep-alive or pipelined connection is found and checked in its turn. A
//! head that hyper would refuse is never passed on, and the connection
//! answers it instead (`conn.rs`). After a request that may switch protocols
//! (`CONNECT`, `Upgrade`), a body whose chunks hyper will refuse, or the
//! HTTP/2 preface, the rest of the connection passes unchecked: hyper ends
//! the connection after it, or it is no longer HTTP/1.1.

use axum::http::{Method, Uri};
use std::mem::MaybeUninit;

/// The most a request head may take: hyper's default read buffer.
pub(super) const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;
/// The most headers a request may have: hyper's default.
const MAX_HEADERS: usize = 100;
/// The longest request target hyper takes.
const MAX_TARGET_BYTES: usize = u16::MAX as usize - 1;
/// The largest `Content-Length` hyper takes.
const MAX_BODY_LENGTH: u64 = u64::MAX - 2;
/// Bytes of chunk extensions hyper reads in a body.
const MAX_CHUNK_EXTENSION_BYTES: u64 = 16 * 1024;
/// What an HTTP/2 client with prior knowledge sends first; hyper closes such
/// a connection without an answer.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Why a request head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the request line or a header cannot be read, or the body's
    /// length cannot be told; what is wrong, for the client.
    Malformed(&'static str),
    /// 414: the request target is over 65,534 bytes.
    TargetTooLong,
    /// 431: the head is over about 400 KiB, or has more than 100 headers.
    HeadTooLarge,
}

/// How far the gate has followed the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Step {
    /// The first bytes, this many, may be passed on.
    pub cleared: usize,
    /// The head that begins after them is refused.
    pub refused: Option<Refusal>,
}

/// A connection's requests, as hyper will read them.
pub(super) struct Gate {
    framing: Framing,
    /// Heads passed so far.
    heads: u64,
}

/// What the next bytes of the connection are.
enum Framing {
    /// A request head; `seen` of its bytes were looked at already.
    Head { seen: usize },
    /// This many bytes of a body.
    Length(u64),
    /// A chunked body.
    Chunked(Chunks),
    /// Whatever comes: passed on as it is.
    Unchecked,
}

impl Gate {
    pub(super) fn new() -> Self {
        Self {
            framing: Framing::Head { seen: 0 },
            heads: 0,
        }
    }

    /// Heads passed so far: the index, among the requests hyper hands to
    /// the service, that a refused head would have had.
    pub(super) fn heads(&self) -> u64 {
        self.heads
    }

    /// Follows `bytes`, which begin where the last call's cleared bytes
    /// ended (a head held back is given again, with more after it); `eof`
    /// when the client will send nothing more.
    pub(super) fn advance(&mut self, bytes: &[u8], eof: bool) -> Step {
        let mut at = 0;
        loop {
            match &mut self.framing {
                Framing::Unchecked => {
                    return Step {
                        cleared: bytes.len(),
                        refused: None,
                    };
                }
                Framing::Length(left) => {
                    let take = (*left).min((bytes.len() - at) as u64);
                    at += take as usize;
                    *left -= take;
                    if *left > 0 {
                        return Step {
                            cleared: at,
                            refused: None,
                        };
                    }
                    self.framing = Framing::Head { seen: 0 };
                }
                Framing::Chunked(chunks) => match chunks.advance(&bytes[at..]) {
                    Some((taken, true)) => {
                        at += taken;
                        self.framing = Framing::Head { seen: 0 };
                    }
                    Some((taken, false)) => {
                        return Step {
                            cleared: at + taken,
                            refused: None,
                        };
                    }
                    // hyper refuses the body and ends the connection.
                    None => self.framing = Framing::Unchecked,
                },
                Framing::Head { seen } => {
                    let rest = &bytes[at..];
                    if rest.is_empty() {
                        return Step {
                            cleared: at,
                            refused: None,
                        };
                    }
                    match check(rest, *seen, eof) {
                        Verdict::Partial => {
                            *seen = rest.len();
                            return Step {
                                cleared: at,
                                refused: None,
                            };
                        }
                        Verdict::Refused(refusal) => {
                            return Step {
                                cleared: at,
                                refused: Some(refusal),
                            };
                        }
                        Verdict::Whole { len, next } => {
                            at += len;
                            self.heads += 1;
                            self.framing = next;
                        }
                        Verdict::NotHttp1 => self.framing = Framing::Unchecked,
                    }
                }
            }
        }
    }
}

/// What a head's bytes so far come to.
enum Verdict {
    /// Not whole yet.
    Partial,
    /// A head of `len` bytes hyper takes, then what follows it.
    Whole {
        len: usize,
        next: Framing,
    },
    Refused(Refusal),
    /// The HTTP/2 preface: hyper ends the connection without an answer.
    NotHttp1,
}

/// Checks the head at the start of `bytes` as hyper would, `seen` of them
/// having been looked at before.
fn check(bytes: &[u8], seen: usize, eof: bool) -> Verdict {
    // hyper reads a head into a buffer of at most MAX_HEAD_BYTES and parses
    // it as soon as it begins, then again only when new bytes may end it.
    let bytes = &bytes[..bytes.len().min(MAX_HEAD_BYTES)];
    if seen > 0 && !eof && bytes.len() < MAX_HEAD_BYTES && !may_end(bytes, seen) {
        return Verdict::Partial;
    }
    // Room for the headers left uninitialised, as hyper does: a request
    // fills a few of them.
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut request,
        bytes,
        &mut headers,
    );
    match parsed {
        Ok(httparse::Status::Complete(len)) => match next_framing(&request) {
            Ok(next) => Verdict::Whole { len, next },
            Err(refusal) => Verdict::Refused(refusal),
        },
        Ok(httparse::Status::Partial) if bytes.len() >= MAX_HEAD_BYTES => {
            Verdict::Refused(Refusal::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => Verdict::Partial,
        Err(httparse::Error::Version) if bytes.starts_with(H2_PREFACE) => Verdict::NotHttp1,
        Err(error) => Verdict::Refused(match error {
            // httparse names the method or the target by what it had read.
            httparse::Error::Token if request.method.is_none() => {
                Refusal::Malformed("its method cannot be read")
            }
            httparse::Error::Token => Refusal::Malformed("its target cannot be read"),
            httparse::Error::HeaderName | httparse::Error::HeaderValue => {
                Refusal::Malformed("a header line cannot be read")
            }
            httparse::Error::NewLine => Refusal::Malformed("a line of its head ends in a bare CR"),
            httparse::Error::Version => Refusal::Malformed("its HTTP version is not 1.0 or 1.1"),
            httparse::Error::TooManyHeaders => Refusal::HeadTooLarge,
            httparse::Error::Status => Refusal::Malformed("its request line cannot be read"),
        }),
    }
}

/// Whether the bytes after the first `seen` may end a head: hyper's quick
/// scan before it parses a head again.
fn may_end(bytes: &[u8], seen: usize) -> bool {
    let bytes = &bytes[seen.saturating_sub(3)..];
    bytes.iter().enumerate().any(|(i, &b)| {
        let after = &bytes[i + 1..];
        (b == b'\r' && after.starts_with(b"\n\r\n"))
            || (b == b'\n' && (after.starts_with(b"\n") || after.starts_with(b"\r\n")))
    })
}

/// hyper's checks of a parsed head, and the framing of the body after it.
fn next_framing(request: &httparse::Request<'_, '_>) -> Result<Framing, Refusal> {
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(Refusal::Malformed("its request line cannot be read"));
    };
    if target.len() > MAX_TARGET_BYTES {
        return Err(Refusal::TargetTooLong);
    }
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| Refusal::Malformed("its method cannot be read"))?;
    Uri::try_from(target).map_err(|_| Refusal::Malformed("its target cannot be read"))?;
    let http11 = version == 1;
    let mut switches = method == Method::CONNECT;
    let (mut encoded, mut chunked) = (false, false);
    let mut length: Option<u64> = None;
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            if !http11 {
                return Err(Refusal::Malformed(
                    "Transfer-Encoding is not allowed in HTTP/1.0",
                ));
            }
            // A length before it is dropped.
            encoded = true;
            length = None;
            chunked = ends_in_chunked(header.value);
        } else if name.eq_ignore_ascii_case("content-length") {
            // After a Transfer-Encoding, lengths are ignored.
            if encoded {
                continue;
            }
            let Some(value) = digits(header.value) else {
                return Err(Refusal::Malformed("its Content-Length is not a number"));
            };
            match length {
                Some(earlier) if earlier != value => {
                    return Err(Refusal::Malformed("it has two different Content-Lengths"));
                }
                Some(_) => {}
                None if value > MAX_BODY_LENGTH => {
                    return Err(Refusal::Malformed("its Content-Length is out of range"));
                }
                None => length = Some(value),
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            switches = http11;
        }
    }
    if encoded && !chunked {
        return Err(Refusal::Malformed(
            "its Transfer-Encoding does not end in chunked",
        ));
    }
    Ok(if switches {
        Framing::Unchecked
    } else if encoded {
        Framing::Chunked(Chunks::new())
    } else {
        Framing::Length(length.unwrap_or(0))
    })
}

/// Whether a `Transfer-Encoding` value's last coding is `chunked`.
fn ends_in_chunked(value: &[u8]) -> bool {
    visible_ascii(value)
        .and_then(|value| value.rsplit(',').next())
        .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"))
}

/// A header value as text, when it is printable ASCII (with tabs): what
/// `HeaderValue::to_str` takes.
fn visible_ascii(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

/// A `Content-Length` as hyper reads it: decimal digits only.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit()
            .then_some(())
            .and_then(|()| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))
    })
}

/// A chunked body, followed with hyper's decoder's states and rules.
struct Chunks {
    state: Chunk,
    /// The chunk's size being read, then what is left of its data.
    size: u64,
    extension_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Start,
    Size,
    SizeSpace,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    EndCr,
    EndLf,
    Trailer,
    TrailerLf,
}

impl Chunks {
    fn new() -> Self {
        Self {
            state: Chunk::Start,
            size: 0,
            extension_bytes: 0,
        }
    }

    /// Follows `bytes`: how many belong to the body and whether it ended
    /// there; `None` when hyper refuses them.
    fn advance(&mut self, bytes: &[u8]) -> Option<(usize, bool)> {
        let mut at = 0;
        while at < bytes.len() {
            if self.state == Chunk::Data {
                let take = self.size.min((bytes.len() - at) as u64);
                at += take as usize;
                self.size -= take;
                if self.size == 0 {
                    self.state = Chunk::DataCr;
                }
                continue;
            }
            let byte = bytes[at];
            at += 1;
            self.state = match (self.state, byte) {
                (Chunk::Start | Chunk::Size, _) if hex(byte).is_some() => {
                    let digit = u64::from(hex(byte)?);
                    self.size = self.size.checked_mul(16)?.checked_add(digit)?;
                    Chunk::Size
                }
                (Chunk::Size | Chunk::SizeSpace, b'\t' | b' ') => Chunk::SizeSpace,
                (Chunk::Size | Chunk::SizeSpace, b';') => Chunk::Extension,
                (Chunk::Size | Chunk::SizeSpace | Chunk::Extension, b'\r') => Chunk::SizeLf,
                (Chunk::Extension, b'\n') => return None,
                (Chunk::Extension, _) => {
                    self.extension_bytes += 1;
                    if self.extension_bytes >= MAX_CHUNK_EXTENSION_BYTES {
                        return None;
                    }
                    Chunk::Extension
                }
                (Chunk::SizeLf, b'\n') if self.size == 0 => Chunk::EndCr,
                (Chunk::SizeLf, b'\n') => Chunk::Data,
                (Chunk::DataCr, b'\r') => Chunk::DataLf,
                (Chunk::DataLf, b'\n') => Chunk::Start,
                (Chunk::EndCr, b'\r') => Chunk::EndLf,
                (Chunk::Trailer, b'\r') => Chunk::TrailerLf,
                (Chunk::EndCr | Chunk::Trailer, _) => Chunk::Trailer,
                (Chunk::TrailerLf, b'\n') => Chunk::EndCr,
                (Chunk::EndLf, b'\n') => return Some((at, true)),
                _ => return None,
            };
        }
        Some((at, false))
    }
}

/// A hexadecimal digit's value.
fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
