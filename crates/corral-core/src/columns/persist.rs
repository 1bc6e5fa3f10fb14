//! An [`Columns`] written to bytes and read back: the body of a snapshot's
//! checkpoint file (the file's header and checks are the caller's).
//!
//! Little-endian, column by column, in three parts that can be written at
//! different moments: the subscriber columns (which change in place, so are
//! written in one go), then each event column and each detail column (which
//! only ever grow, so a prefix of known length can be written a chunk at a
//! time while the audience keeps growing). Strings are a `u32` length and
//! UTF-8 bytes; a value is a tag byte and its payload.

use super::{Columns, EventColumn, NOBODY, Texts, Val};
use crate::query::ast::DetailPath;
use fixedbitset::FixedBitSet;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;

/// Elements converted per bulk read or write.
const BLOCK: usize = 1 << 16;

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Writes the primitive parts.
pub struct Encoder<W: Write> {
    out: W,
}

impl<W: Write> Encoder<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    pub fn inner_mut(&mut self) -> &mut W {
        &mut self.out
    }

    pub fn u8(&mut self, v: u8) -> io::Result<()> {
        self.out.write_all(&[v])
    }

    pub fn u32(&mut self, v: u32) -> io::Result<()> {
        self.out.write_all(&v.to_le_bytes())
    }

    pub fn u64(&mut self, v: u64) -> io::Result<()> {
        self.out.write_all(&v.to_le_bytes())
    }

    pub fn i64(&mut self, v: i64) -> io::Result<()> {
        self.out.write_all(&v.to_le_bytes())
    }

    pub fn str(&mut self, s: &str) -> io::Result<()> {
        self.u32(u32::try_from(s.len()).map_err(|_| invalid("string too long"))?)?;
        self.out.write_all(s.as_bytes())
    }

    /// Numbers, each as its `N` little-endian bytes, a block at a time.
    fn numbers<T: Copy, const N: usize>(
        &mut self,
        values: &[T],
        bytes: impl Fn(T) -> [u8; N],
    ) -> io::Result<()> {
        let mut buf = Vec::with_capacity(BLOCK.min(values.len()) * N);
        for block in values.chunks(BLOCK) {
            buf.clear();
            for &v in block {
                buf.extend_from_slice(&bytes(v));
            }
            self.out.write_all(&buf)?;
        }
        Ok(())
    }

    pub fn u32s(&mut self, values: &[u32]) -> io::Result<()> {
        self.numbers(values, u32::to_le_bytes)
    }

    pub fn i64s(&mut self, values: &[i64]) -> io::Result<()> {
        self.numbers(values, i64::to_le_bytes)
    }

    fn bits(&mut self, set: &FixedBitSet, len: usize) -> io::Result<()> {
        let mut words = vec![0u32; len.div_ceil(32)];
        for i in set.ones().take_while(|&i| i < len) {
            words[i / 32] |= 1 << (i % 32);
        }
        self.u32s(&words)
    }

    pub fn val(&mut self, v: &Val) -> io::Result<()> {
        match v {
            Val::Missing => self.u8(0),
            Val::Null => self.u8(1),
            Val::Bool(false) => self.u8(2),
            Val::Bool(true) => self.u8(3),
            Val::Number(n) => {
                self.u8(4)?;
                self.out.write_all(&n.to_le_bytes())
            }
            Val::Text(t) => {
                self.u8(5)?;
                self.str(t)
            }
            Val::Other => self.u8(6),
        }
    }

    pub fn vals(&mut self, values: &[Val]) -> io::Result<()> {
        values.iter().try_for_each(|v| self.val(v))
    }

    pub fn path(&mut self, path: &DetailPath) -> io::Result<()> {
        self.u32(path.0.len() as u32)?;
        path.0.iter().try_for_each(|p| self.str(p))
    }
}

/// Reads what [`Encoder`] wrote.
pub struct Decoder<R: Read> {
    input: R,
}

impl<R: Read> Decoder<R> {
    pub fn new(input: R) -> Self {
        Self { input }
    }

    pub fn into_inner(self) -> R {
        self.input
    }

    pub fn inner_mut(&mut self) -> &mut R {
        &mut self.input
    }

    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.input.read_exact(&mut b)?;
        Ok(b)
    }

    pub fn u8(&mut self) -> io::Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> io::Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A length that must be plausible: at most `limit`.
    pub fn len(&mut self, limit: usize) -> io::Result<usize> {
        let n = self.u64()? as usize;
        if n > limit {
            return Err(invalid(format!("a length of {n} is above {limit}")));
        }
        Ok(n)
    }

    pub fn str(&mut self) -> io::Result<String> {
        let n = self.u32()? as usize;
        let mut bytes = vec![0u8; n];
        self.input.read_exact(&mut bytes)?;
        String::from_utf8(bytes).map_err(|_| invalid("a string is not UTF-8"))
    }

    fn bytes(&mut self, n: usize, width: usize, mut take: impl FnMut(&[u8])) -> io::Result<()> {
        let mut buf = vec![0u8; BLOCK.min(n) * width];
        let mut left = n;
        while left > 0 {
            let k = left.min(BLOCK);
            self.input.read_exact(&mut buf[..k * width])?;
            take(&buf[..k * width]);
            left -= k;
        }
        Ok(())
    }

    pub fn u32s(&mut self, n: usize) -> io::Result<Vec<u32>> {
        let mut out = Vec::with_capacity(n);
        self.bytes(n, 4, |b| {
            out.extend(
                b.chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
        })?;
        Ok(out)
    }

    pub fn i64s(&mut self, n: usize) -> io::Result<Vec<i64>> {
        let mut out = Vec::with_capacity(n);
        self.bytes(n, 8, |b| {
            out.extend(
                b.chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])),
            );
        })?;
        Ok(out)
    }

    fn bits(&mut self, len: usize) -> io::Result<FixedBitSet> {
        let words = self.u32s(len.div_ceil(32))?;
        let mut set = FixedBitSet::with_capacity(len);
        for (w, word) in words.iter().enumerate() {
            let mut word = *word;
            while word != 0 {
                let b = word.trailing_zeros() as usize;
                let i = w * 32 + b;
                if i >= len {
                    return Err(invalid("a bit set has bits past its length"));
                }
                set.insert(i);
                word &= word - 1;
            }
        }
        Ok(set)
    }

    pub fn val(&mut self) -> io::Result<Val> {
        Ok(match self.u8()? {
            0 => Val::Missing,
            1 => Val::Null,
            2 => Val::Bool(false),
            3 => Val::Bool(true),
            4 => Val::Number(f64::from_le_bytes(self.array()?)),
            5 => Val::Text(self.str()?.into()),
            6 => Val::Other,
            tag => return Err(invalid(format!("unknown value tag {tag}"))),
        })
    }

    pub fn vals(&mut self, n: usize) -> io::Result<Vec<Val>> {
        (0..n).map(|_| self.val()).collect()
    }

    pub fn path(&mut self) -> io::Result<DetailPath> {
        let n = self.u32()? as usize;
        if n > 64 {
            return Err(invalid("a detail path is too deep"));
        }
        Ok(DetailPath(
            (0..n).map(|_| self.str()).collect::<io::Result<_>>()?,
        ))
    }
}

/// Event types with their event counts, and detail columns with their
/// lengths.
/// Event types with their event counts and whether they keep a rank, and
/// detail columns with their lengths.
pub type ColumnLengths = (
    Vec<(String, usize, bool)>,
    Vec<((String, DetailPath), usize)>,
);

/// The most subscribers, events or values a checkpoint may claim: a bound
/// that keeps a damaged length from asking for absurd memory.
const MAX_LEN: usize = 1 << 34;

impl Columns {
    /// Writes the subscriber columns (ids, uuids, emails, domains,
    /// subscription, creation, tags and fields) and the highest event id
    /// held. Uuids in Corral's form are their 16 bytes; the others follow
    /// as (index, text).
    pub fn write_subscribers<W: Write>(&self, e: &mut Encoder<W>) -> io::Result<()> {
        let n = self.len();
        e.u64(n as u64)?;
        e.i64s(&self.ids)?;
        let (packed, other) = self.uuids.parts();
        for block in packed.chunks(BLOCK) {
            e.out.write_all(block.as_flattened())?;
        }
        e.u64(other.len() as u64)?;
        for (index, text) in other {
            e.u32(index)?;
            e.str(text)?;
        }
        for i in 0..n {
            e.str(self.emails_lower.get(i))?;
        }
        e.i64s(&self.created_at)?;
        e.bits(&self.subscribed, n)?;
        let mut tags: Vec<(&String, &FixedBitSet)> = self.tags.iter().collect();
        tags.sort_unstable_by_key(|(name, _)| *name);
        e.u64(tags.len() as u64)?;
        for (name, holders) in tags {
            e.str(name)?;
            e.bits(holders, n)?;
        }
        let mut fields: Vec<(&String, &super::FieldColumn)> = self.fields.iter().collect();
        fields.sort_unstable_by_key(|(key, _)| *key);
        e.u64(fields.len() as u64)?;
        for (key, column) in fields {
            e.str(key)?;
            e.u64(column.values().len() as u64)?;
            e.vals(column.values())?;
            e.u32s(column.codes())?;
        }
        e.i64(self.events_through)
    }

    /// The event types with how many events each holds, and the detail
    /// columns with their lengths, in a fixed order: what
    /// [`Columns::write_events`] and [`Columns::write_details`] may write
    /// later, even after more events were appended.
    pub fn column_lengths(&self) -> ColumnLengths {
        let mut events: Vec<(String, usize, bool)> = self
            .events
            .iter()
            .map(|(kind, c)| (kind.clone(), c.len(), c.rank().is_some()))
            .collect();
        events.sort();
        let mut details: Vec<((String, DetailPath), usize)> = self
            .details
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(key, c)| (key.clone(), c.len()))
            .collect();
        details.sort_by(|a, b| (&a.0.0, &a.0.1.0).cmp(&(&b.0.0, &b.0.1.0)));
        (events, details)
    }

    /// Writes the subscribers (`part` 0), times (`part` 1) or ranks (`part`
    /// 2) of the events of `kind` in `range`; false when the column is
    /// shorter or has no ranks.
    pub fn write_events<W: Write>(
        &self,
        kind: &str,
        part: u8,
        range: std::ops::Range<usize>,
        e: &mut Encoder<W>,
    ) -> io::Result<bool> {
        let Some(column) = self.events.get(kind) else {
            return Ok(false);
        };
        if column.len() < range.end {
            return Ok(false);
        }
        match part {
            0 => e.u32s(&column.subscriber[range])?,
            1 => e.i64s(&column.at[range])?,
            _ => match column.rank() {
                Some(rank) => e.u32s(&rank[range])?,
                None => return Ok(false),
            },
        }
        Ok(true)
    }

    /// Writes the values in `range` of a detail column; false when the
    /// column is no longer loaded or is shorter.
    pub fn write_details<W: Write>(
        &self,
        key: &(String, DetailPath),
        range: std::ops::Range<usize>,
        e: &mut Encoder<W>,
    ) -> io::Result<bool> {
        let Some(column) = self.details(&key.0, &key.1) else {
            return Ok(false);
        };
        if column.len() < range.end {
            return Ok(false);
        }
        e.vals(&column[range])?;
        Ok(true)
    }

    /// Reads an audience written as [`Columns::write_subscribers`], then,
    /// for each event type, its length, subscribers and times, then for each
    /// detail column its type, path, length and values.
    pub fn read_from<R: Read>(d: &mut Decoder<R>) -> io::Result<Columns> {
        let mut a = Columns::default();
        let n = d.len(u32::MAX as usize - 1)?;
        a.ids = d.i64s(n)?;
        if a.ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid("subscriber ids are not ascending"));
        }
        let mut packed: Vec<[u8; 16]> = Vec::with_capacity(n);
        d.bytes(n, 16, |b| {
            packed.extend(b.chunks_exact(16).map(|c| {
                let mut uuid = [0u8; 16];
                uuid.copy_from_slice(c);
                uuid
            }));
        })?;
        let mut other = Vec::new();
        for _ in 0..d.len(n)? {
            other.push((d.u32()?, d.str()?));
        }
        a.uuids = super::Uuids::from_parts(packed, other)
            .ok_or_else(|| invalid("a uuid names a subscriber out of range"))?;
        let mut emails = Texts::default();
        for _ in 0..n {
            emails.push(&d.str()?);
        }
        a.domain_of = Vec::with_capacity(n);
        for i in 0..n {
            let lower = emails.get(i).to_owned();
            let domain = a.domain_index(&lower);
            a.domain_of.push(domain);
        }
        a.emails_lower = emails;
        a.created_at = d.i64s(n)?;
        a.subscribed = d.bits(n)?;
        for _ in 0..d.len(MAX_LEN)? {
            let name = d.str()?;
            let holders = d.bits(n)?;
            a.tags.insert(name, holders);
        }
        for _ in 0..d.len(MAX_LEN)? {
            let key = d.str()?;
            let distinct = d.len(MAX_LEN)?;
            let values = d.vals(distinct)?;
            let codes = d.u32s(n)?;
            let column = super::FieldColumn::from_parts(values, codes)
                .ok_or_else(|| invalid("a field's codes do not fit its values"))?;
            a.fields.insert(key, column);
        }
        a.events_through = d.i64()?;
        for _ in 0..d.len(MAX_LEN)? {
            let kind = d.str()?;
            let len = d.len(MAX_LEN)?;
            let subscriber = d.u32s(len)?;
            if subscriber.iter().any(|&s| s != NOBODY && s as usize >= n) {
                return Err(invalid("an event names a subscriber out of range"));
            }
            let at = d.i64s(len)?;
            let rank = match d.u8()? {
                0 => None,
                _ => Some(d.u32s(len)?),
            };
            let column = EventColumn::from_parts(subscriber, at, rank)
                .ok_or_else(|| invalid("an event column's ranks do not fit it"))?;
            a.events.insert(kind, column);
        }
        let mut details = HashMap::new();
        for _ in 0..d.len(MAX_LEN)? {
            let kind = d.str()?;
            let path = d.path()?;
            let len = d.len(MAX_LEN)?;
            if len != a.event_count_of(&kind) {
                return Err(invalid("a detail column does not line up with its events"));
            }
            details.insert((kind, path), Arc::new(d.vals(len)?));
        }
        *a.details.get_mut().unwrap_or_else(|e| e.into_inner()) = details;
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::{ColumnsBuilder, SubscriberRecord};
    use serde_json::json;

    /// Writes `a` whole, in the order [`Columns::read_from`] expects.
    fn write_all(a: &Columns) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new());
        a.write_subscribers(&mut e).unwrap();
        let (events, details) = a.column_lengths();
        e.u64(events.len() as u64).unwrap();
        for (kind, len, ranked) in &events {
            e.str(kind).unwrap();
            e.u64(*len as u64).unwrap();
            assert!(a.write_events(kind, 0, 0..*len, &mut e).unwrap());
            assert!(a.write_events(kind, 1, 0..*len, &mut e).unwrap());
            e.u8(u8::from(*ranked)).unwrap();
            if *ranked {
                assert!(a.write_events(kind, 2, 0..*len, &mut e).unwrap());
            }
        }
        e.u64(details.len() as u64).unwrap();
        for (key, len) in &details {
            e.str(&key.0).unwrap();
            e.path(&key.1).unwrap();
            e.u64(*len as u64).unwrap();
            assert!(a.write_details(key, 0..*len, &mut e).unwrap());
        }
        e.into_inner()
    }

    fn sample() -> Columns {
        let mut b = ColumnsBuilder::new();
        for (id, uuid, email, subscribed, fields) in [
            (
                3,
                "0123456789abcdef0123456789abcdef",
                "Ann@X.io",
                true,
                json!({"plan": "Pro", "n": 2.5, "b": true}),
            ),
            (
                7,
                "Not-Corral's-Form",
                "bo@y.com",
                false,
                json!({"plan": null, "o": {"k": 1}}),
            ),
            (
                40,
                "ffffffffffffffffffffffffffffffff",
                "noat",
                true,
                json!({}),
            ),
        ] {
            b.subscriber(SubscriberRecord {
                id,
                uuid: uuid.into(),
                email: email.into(),
                subscribed,
                created_at: id * 1000,
                fields: fields.as_object().unwrap().clone(),
            });
        }
        b.tag(3, "vip");
        b.tag(40, "vip");
        b.tag(7, "ünï");
        b.event(3, "$pageview", 10);
        b.event(99, "$pageview", 11);
        b.event(7, "$purchase", 12);
        b.events_through(30);
        let a = b.build();
        let path = DetailPath(vec!["value".into(), "amount".into()]);
        assert!(a.add_details("$purchase", path, vec![Val::Number(5.0)]));
        a
    }

    #[test]
    fn an_audience_reads_back_as_written() {
        let a = sample();
        let bytes = write_all(&a);
        let b = Columns::read_from(&mut Decoder::new(&bytes[..])).unwrap();
        assert_eq!(a.canonical(), b.canonical());
        let mut buf = [0; 32];
        assert_eq!(b.uuid(1, &mut buf), "Not-Corral's-Form");
        assert_eq!(b.uuid(2, &mut buf), "ffffffffffffffffffffffffffffffff");
        assert_eq!(b.domain_of(0), b.domain_id("x.io").unwrap());
        assert_eq!(b.domain_of(2), NOBODY);
    }

    #[test]
    fn damaged_bytes_are_refused_not_misread() {
        let bytes = write_all(&sample());
        for cut in [0, 1, 8, bytes.len() / 2, bytes.len() - 1] {
            assert!(Columns::read_from(&mut Decoder::new(&bytes[..cut])).is_err());
        }
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Columns::read_from(&mut Decoder::new(&huge[..])).is_err());
    }
}
