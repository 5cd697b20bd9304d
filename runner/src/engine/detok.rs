//! Streaming detokenization: turns tokens into text as they are generated, emitting only complete
//! characters (a byte-level BPE token can end in the middle of a multi-byte UTF-8 character) and text
//! that later tokens cannot change.
//!
//! It keeps a short window of recent tokens and decodes it twice, before and after the new token; the
//! difference is the new text, held back while it ends in U+FFFD (an incomplete character).

use tokenizers::Tokenizer;

/// Incremental decoder for one generated sequence.
pub struct StreamDecoder<'t> {
    tokenizer: &'t Tokenizer,
    ids: Vec<u32>,
    /// Start of the decoding window: text before it was emitted and will not change.
    prefix_offset: usize,
    /// End of what was already emitted, in tokens.
    read_offset: usize,
    skip_special_tokens: bool,
}

impl<'t> StreamDecoder<'t> {
    pub fn new(tokenizer: &'t Tokenizer, skip_special_tokens: bool) -> Self {
        StreamDecoder { tokenizer, ids: Vec::new(), prefix_offset: 0, read_offset: 0, skip_special_tokens }
    }

    /// Adds a token; returns the text it completes, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>, tokenizers::Error> {
        self.ids.push(id);
        let before = self.decode(self.prefix_offset, self.read_offset)?;
        let after = self.decode(self.prefix_offset, self.ids.len())?;
        if after.len() > before.len() && !after.ends_with('\u{FFFD}') && after.starts_with(&before) {
            let text = after[before.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            Ok(Some(text))
        } else {
            Ok(None)
        }
    }

    /// Whatever is still held back (an incomplete character at the end of generation), lossily.
    pub fn flush(&mut self) -> Result<Option<String>, tokenizers::Error> {
        let before = self.decode(self.prefix_offset, self.read_offset)?;
        let after = self.decode(self.prefix_offset, self.ids.len())?;
        self.prefix_offset = self.ids.len();
        self.read_offset = self.ids.len();
        Ok(after.strip_prefix(before.as_str()).filter(|rest| !rest.is_empty()).map(str::to_owned))
    }

    fn decode(&self, start: usize, end: usize) -> Result<String, tokenizers::Error> {
        if start >= end {
            return Ok(String::new());
        }
        self.tokenizer.decode(&self.ids[start..end], self.skip_special_tokens)
    }
}
