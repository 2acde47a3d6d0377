//! Reading fuzz inputs, and writing them.

/// Reads a fuzz input front to back. Past the end every read yields zeros or nothing, so any
/// input is a valid one.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// A reader of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, or 0.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Up to `n` bytes: fewer when the input ends first.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        taken
    }

    /// A LEB128 varint of up to 10 bytes; the bits past 64 are dropped.
    pub fn varint(&mut self) -> u64 {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte();
            value |= u64::from(b & 0x7F).checked_shl(shift).unwrap_or(0);
            if b & 0x80 == 0 || self.is_empty() {
                break;
            }
        }
        value
    }

    /// Every byte left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }
}

/// Appends `value` as a LEB128 varint, as [`Input::varint`] reads it.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(u8::try_from(value & 0x7F).unwrap_or(0) | 0x80);
        value >>= 7;
    }
    out.push(u8::try_from(value).unwrap_or(0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_read_back() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let mut input = Input::new(&out);
            assert_eq!(input.varint(), value);
            assert!(input.is_empty());
        }
    }

    #[test]
    fn reads_past_the_end_are_zero() {
        let mut input = Input::new(&[0x80]);
        assert_eq!(input.varint(), 0);
        assert_eq!(input.byte(), 0);
        assert_eq!(input.bytes(3), &[] as &[u8]);
    }
}
