use bytes::Bytes;
use std::fmt;
use std::ops::Deref;

/// A cheaply clonable, sliceable UTF-8 string backed by [`Bytes`].
///
/// Text messages travel from the transport to JS and from JS to many
/// transports (broadcast); sharing one buffer avoids a copy per hop.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Str(Bytes);

impl Str {
    /// An empty string.
    pub const fn new() -> Self {
        Str(Bytes::new())
    }

    /// Wraps bytes after checking that they are UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Str(bytes))
    }

    /// Wraps bytes known to be UTF-8.
    ///
    /// # Safety
    /// `bytes` must be valid UTF-8.
    pub unsafe fn from_utf8_unchecked(bytes: Bytes) -> Self {
        Str(bytes)
    }

    /// A static string, without allocation.
    pub const fn from_static(s: &'static str) -> Self {
        Str(Bytes::from_static(s.as_bytes()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor guarantees UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The byte buffer underneath.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The byte buffer underneath, by value.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The sub-string starting at byte `start`, sharing the buffer.
    ///
    /// # Panics
    /// If `start` is not on a character boundary.
    pub fn slice_from(&self, start: usize) -> Str {
        assert!(self.as_str().is_char_boundary(start));
        Str(self.0.slice(start..))
    }

    /// The sub-string of bytes `start..end`, sharing the buffer.
    ///
    /// # Panics
    /// If either end is not on a character boundary.
    pub fn slice(&self, start: usize, end: usize) -> Str {
        let s = self.as_str();
        assert!(s.is_char_boundary(start) && s.is_char_boundary(end));
        Str(self.0.slice(start..end))
    }
}

impl Deref for Str {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Str {
    fn from(s: String) -> Self {
        Str(Bytes::from(s.into_bytes()))
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Self {
        Str(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
