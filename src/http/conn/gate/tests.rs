//! The gate against streams of requests fed in pieces of every size, as a
//! connection's reads may cut them.

use super::{Gate, Refusal, Step};

/// Feeds `stream` to a gate `piece` bytes at a time, holding back what it
/// does not clear as the connection does; the bytes cleared in all, and the
/// refusal if any.
fn feed(stream: &[u8], piece: usize) -> (usize, Option<Refusal>, u64) {
    let mut gate = Gate::new();
    let mut cleared = 0;
    let mut held: Vec<u8> = Vec::new();
    for chunk in stream.chunks(piece) {
        held.extend_from_slice(chunk);
        let Step {
            cleared: now,
            refused,
        } = gate.advance(&held, false);
        cleared += now;
        held.drain(..now);
        if refused.is_some() {
            return (cleared, refused, gate.heads());
        }
    }
    let Step {
        cleared: now,
        refused,
    } = gate.advance(&held, true);
    (cleared + now, refused, gate.heads())
}

/// Every piece size from 1 to the whole stream gives the same verdict.
fn verdict(stream: &[u8]) -> (usize, Option<Refusal>, u64) {
    let whole = feed(stream, stream.len());
    for piece in 1..stream.len() {
        assert_eq!(feed(stream, piece), whole, "in pieces of {piece}");
    }
    whole
}

const SIZED: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
const CHUNKED: &[u8] = b"POST /b HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
    5;ext=1\r\nGET /\r\n4 \r\n\r\n\r\n\r\n0\r\nTrailer: x\r\n\r\n";
const PLAIN: &[u8] = b"\r\nGET /c?d=e HTTP/1.0\nHost: x\n\n";

#[test]
fn pipelined_requests_with_sized_and_chunked_bodies_pass_whole() {
    let stream = [SIZED, CHUNKED, PLAIN, SIZED].concat();
    assert_eq!(verdict(&stream), (stream.len(), None, 4));
}

#[test]
fn a_bad_head_after_good_requests_is_refused_where_it_begins() {
    let cases: [(&[u8], Refusal); 6] = [
        (
            b"GET /a\0b HTTP/1.1\r\n\r\n",
            Refusal::Malformed("its target cannot be read"),
        ),
        (
            b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
            Refusal::Malformed("a header line cannot be read"),
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            Refusal::Malformed("it has two different Content-Lengths"),
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            Refusal::Malformed("its Transfer-Encoding does not end in chunked"),
        ),
        (
            b"GET http://[::1/ HTTP/1.1\r\n\r\n",
            Refusal::Malformed("its target cannot be read"),
        ),
        (b"GET / HTTP/1.1\r\nA: b\r\n\r\n", Refusal::HeadTooLarge),
    ];
    for (bad, refusal) in cases {
        let bad = if refusal == Refusal::HeadTooLarge {
            let headers: String = (0..101).map(|i| format!("X-{i}: y\r\n")).collect();
            format!("GET / HTTP/1.1\r\n{headers}\r\n").into_bytes()
        } else {
            bad.to_vec()
        };
        let good = [SIZED, CHUNKED].concat();
        let stream = [&good[..], &bad, SIZED].concat();
        assert_eq!(
            verdict(&stream),
            (good.len(), Some(refusal), 2),
            "{}",
            String::from_utf8_lossy(&bad)
        );
    }
}

#[test]
fn a_head_over_the_limits_is_refused() {
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(65_534));
    assert_eq!(
        feed(long.as_bytes(), 8192),
        (0, Some(Refusal::TargetTooLong), 0)
    );
    let just = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(65_533));
    assert_eq!(feed(just.as_bytes(), 8192), (just.len(), None, 1));
    // A head that never ends is refused once it fills hyper's buffer.
    let endless = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(super::MAX_HEAD_BYTES));
    assert_eq!(
        feed(endless.as_bytes(), 8192),
        (0, Some(Refusal::HeadTooLarge), 0)
    );
}

#[test]
fn what_may_switch_protocols_and_broken_chunks_pass_unchecked() {
    let upgrade = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\0\0\0 not http";
    assert_eq!(verdict(upgrade), (upgrade.len(), None, 1));
    let broken = [
        &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
        b"GET /\0 HTTP/1.1\r\n\r\n",
    ]
    .concat();
    assert_eq!(verdict(&broken), (broken.len(), None, 1));
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0";
    assert_eq!(feed(preface, preface.len()), (preface.len(), None, 0));
}

#[test]
fn a_client_that_stops_half_way_through_a_head_is_not_answered() {
    assert_eq!(verdict(b"GET / HTTP/1.1\r\nHost: x\r\n"), (0, None, 0));
    // Unless what it sent is already wrong.
    assert_eq!(
        verdict(b"GET /\0"),
        (0, Some(Refusal::Malformed("its target cannot be read")), 0)
    );
}
