//! A field's values over the subscribers, dictionary-encoded: each distinct
//! value is held once, and each subscriber holds the small number (code)
//! that names its value. A test of the field is decided once per distinct
//! value and then read off per subscriber from a table, so comparing a
//! million subscribers' plans or dates costs a pass over four-byte codes,
//! whatever the test; text that differs only in case is one value (values
//! are kept lowercase, as every text comparison ignores case).
//!
//! Codes only grow: a value no subscriber holds any more keeps its code
//! until the column is read again from scratch, so codes handed to a scan
//! never change meaning under it.

use super::Val;
use std::collections::HashMap;

/// A value as a hash key (numbers by their bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Missing,
    Null,
    Bool(bool),
    Number(u64),
    Text(Box<str>),
    Other,
}

impl Key {
    fn of(value: &Val) -> Self {
        match value {
            Val::Missing => Self::Missing,
            Val::Null => Self::Null,
            Val::Bool(b) => Self::Bool(*b),
            Val::Number(n) => Self::Number(n.to_bits()),
            Val::Text(t) => Self::Text(t.clone()),
            Val::Other => Self::Other,
        }
    }
}

/// The code of [`Val::Missing`] in every column.
pub const MISSING: u32 = 0;

#[derive(Debug, Clone)]
pub struct FieldColumn {
    codes: Vec<u32>,
    values: Vec<Val>,
    index: HashMap<Key, u32>,
}

impl FieldColumn {
    /// A column of `n` subscribers without the field.
    pub fn missing(n: usize) -> Self {
        let mut index = HashMap::new();
        index.insert(Key::Missing, MISSING);
        Self {
            codes: vec![MISSING; n],
            values: vec![Val::Missing],
            index,
        }
    }

    /// The code of `value`, added if new.
    fn code(&mut self, value: Val) -> u32 {
        let key = Key::of(&value);
        if let Some(&code) = self.index.get(&key) {
            return code;
        }
        let code = self.values.len() as u32;
        self.values.push(value);
        self.index.insert(key, code);
        code
    }

    pub fn get(&self, i: usize) -> &Val {
        &self.values[self.codes[i] as usize]
    }

    pub fn set(&mut self, i: usize, value: Val) {
        let code = self.code(value);
        self.codes[i] = code;
    }

    /// Sets subscriber `i`'s value while a column is being built, those
    /// before it without the field until set.
    pub fn set_growing(&mut self, i: usize, value: Val) {
        if self.codes.len() <= i {
            self.codes.resize(i + 1, MISSING);
        }
        self.set(i, value);
    }

    /// Makes the column `n` subscribers long (the ones added without it).
    pub fn pad(&mut self, n: usize) {
        self.codes.resize(n, MISSING);
    }

    pub fn push(&mut self, value: Val) {
        let code = self.code(value);
        self.codes.push(code);
    }

    /// Every subscriber's code.
    pub fn codes(&self) -> &[u32] {
        &self.codes
    }

    /// The distinct values, by code.
    pub fn values(&self) -> &[Val] {
        &self.values
    }

    /// A column from its parts (read back from a checkpoint); `None` when
    /// they do not fit together.
    pub fn from_parts(values: Vec<Val>, codes: Vec<u32>) -> Option<Self> {
        if values.first() != Some(&Val::Missing)
            || codes.iter().any(|&c| c as usize >= values.len())
        {
            return None;
        }
        let mut index = HashMap::with_capacity(values.len());
        for (code, value) in values.iter().enumerate() {
            if index.insert(Key::of(value), code as u32).is_some() {
                return None;
            }
        }
        Some(Self {
            codes,
            values,
            index,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_a_code_and_codes_only_grow() {
        let mut c = FieldColumn::missing(3);
        c.set(0, Val::Text("pro".into()));
        c.set(1, Val::Text("pro".into()));
        c.set(2, Val::Number(2.0));
        assert_eq!(c.codes(), &[1, 1, 2]);
        c.set(1, Val::Missing);
        c.push(Val::Text("free".into()));
        assert_eq!(c.codes(), &[1, 0, 2, 3]);
        assert_eq!(c.get(3), &Val::Text("free".into()));
        assert_eq!(c.values().len(), 4, "pro keeps its code");
        assert!(FieldColumn::from_parts(c.values().to_vec(), c.codes().to_vec()).is_some());
        assert!(FieldColumn::from_parts(vec![Val::Null], vec![0]).is_none());
        assert!(FieldColumn::from_parts(vec![Val::Missing], vec![1]).is_none());
    }
}
