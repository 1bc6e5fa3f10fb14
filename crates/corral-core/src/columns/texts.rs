//! Many strings in one buffer, for the columns of emails.

/// Many strings in one buffer: fewer allocations, and a scan reads memory in
/// order. A string replaced is written anew at the end of the buffer; the
/// buffer is compacted once more than half of it is such leftovers.
#[derive(Debug, Default)]
pub struct Texts {
    bytes: String,
    /// `(start, end)` of each string in `bytes`.
    spans: Vec<(u32, u32)>,
    /// Bytes no string points at any more.
    garbage: usize,
}

impl Texts {
    pub(crate) fn push(&mut self, text: &str) {
        let start = self.bytes.len() as u32;
        self.bytes.push_str(text);
        self.spans.push((start, self.bytes.len() as u32));
    }

    pub(crate) fn replace(&mut self, i: usize, text: &str) {
        if self.get(i) == text {
            return;
        }
        let (start, end) = self.spans[i];
        self.garbage += (end - start) as usize;
        let start = self.bytes.len() as u32;
        self.bytes.push_str(text);
        self.spans[i] = (start, self.bytes.len() as u32);
        if self.garbage > self.bytes.len() / 2 {
            let mut compact = Texts::default();
            for i in 0..self.spans.len() {
                compact.push(self.get(i));
            }
            *self = compact;
        }
    }

    pub fn get(&self, i: usize) -> &str {
        let (start, end) = self.spans[i];
        &self.bytes[start as usize..end as usize]
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_replaced_in_place_and_compacted_when_half_is_leftovers() {
        let mut t = Texts::default();
        assert!(t.is_empty());
        for email in ["ann@x.io", "bob@y.io", "cy@z.io"] {
            t.push(email);
        }
        assert_eq!((t.len(), t.is_empty(), t.bytes.len()), (3, false, 23));
        // The same text: nothing written.
        t.replace(1, "bob@y.io");
        assert_eq!((t.bytes.len(), t.garbage), (23, 0));
        // Each new text at the end; the old bytes are leftovers.
        t.replace(1, "robert@y.io");
        t.replace(0, "a@x.io");
        t.replace(2, "c@z.io");
        assert_eq!((t.bytes.len(), t.garbage), (46, 23), "exactly half: kept");
        assert_eq!(
            [t.get(0), t.get(1), t.get(2)],
            ["a@x.io", "robert@y.io", "c@z.io"]
        );
        // More than half: compacted.
        t.replace(1, "r@y.io");
        assert_eq!((t.bytes.len(), t.garbage), (18, 0));
        assert_eq!(
            [t.get(0), t.get(1), t.get(2)],
            ["a@x.io", "r@y.io", "c@z.io"]
        );
    }
}
