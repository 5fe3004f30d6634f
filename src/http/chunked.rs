//! Incremental chunked transfer-coding scanner (RFC 9112 §7.1).
//!
//! It only *tracks* chunk boundaries so the proxy knows where a message ends;
//! the bytes themselves are forwarded unchanged. Input may arrive split at any
//! byte: feeding the same bytes in one piece or in many gives the same result.
//! Strict by design (a lenient proxy is a smuggling vector): CRLF line endings
//! only, hex sizes without sign or whitespace, bounded extensions and trailers.

/// Why a chunked body is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// A chunk-size line that is not `1*HEXDIG [ext] CRLF`.
    BadSize,
    /// A size above 2^60 (it would overflow any sane limit).
    SizeOverflow,
    /// Chunk data not followed by CRLF.
    BadDataEnd,
    /// A control character or bare CR/LF where a line was expected.
    BadLine,
    /// Extensions or trailers longer than allowed.
    TooLong,
    /// More body bytes than the configured limit.
    BodyTooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size; `digits` seen so far.
    Size { digits: u8 },
    /// After a `;`: chunk extension up to CR.
    Ext,
    /// Saw CR at the end of the size line; expect LF.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// After data; expect CR.
    DataCr,
    /// After data CR; expect LF.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// Saw CR ending a trailer field line; expect LF.
    TrailerLf,
    /// Saw CR of the final empty line; expect LF.
    EndLf,
    /// The message is complete.
    Done,
}

/// Longest chunk extension we accept on one size line.
const MAX_EXT: u32 = 1024;

/// Scanner state for one chunked message.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    remaining: u64,
    line_len: u32,
    trailer_bytes: u32,
    max_trailer: u32,
    body_bytes: u64,
    max_body: u64,
}

/// Result of one [`ChunkedDecoder::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input that belong to this message (all of it, unless the
    /// message ended inside the input).
    pub consumed: usize,
    /// Whether the message (last chunk and trailers) is complete.
    pub done: bool,
}

impl ChunkedDecoder {
    /// A scanner for a message whose payload may be at most `max_body` bytes
    /// and whose trailer section at most `max_trailer` bytes.
    pub fn new(max_body: u64, max_trailer: u32) -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            size: 0,
            remaining: 0,
            line_len: 0,
            trailer_bytes: 0,
            max_trailer,
            body_bytes: 0,
            max_body,
        }
    }

    /// Whether the whole message has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Payload bytes seen so far (chunk data only, not framing).
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Scans `input`, which continues the message. Never reports more
    /// consumed bytes than given; stops at the end of the message.
    pub fn feed(&mut self, input: &[u8]) -> Result<Progress, ChunkError> {
        if self.state == State::Done {
            return Ok(Progress {
                consumed: 0,
                done: true,
            });
        }
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                // Skip over data in one step: the only O(1)-per-chunk path.
                let take =
                    (input.len() - i).min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                i += take;
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.state = self.step(b)?;
            if self.state == State::Done {
                return Ok(Progress {
                    consumed: i,
                    done: true,
                });
            }
        }
        Ok(Progress {
            consumed: i,
            done: self.state == State::Done,
        })
    }

    fn step(&mut self, b: u8) -> Result<State, ChunkError> {
        Ok(match self.state {
            State::Size { digits } => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    if digits >= 15 {
                        return Err(ChunkError::SizeOverflow);
                    }
                    self.size = self.size * 16 + u64::from(hex_val(b));
                    State::Size { digits: digits + 1 }
                }
                b';' if digits > 0 => {
                    self.line_len = 0;
                    State::Ext
                }
                b'\r' if digits > 0 => State::SizeLf,
                _ => return Err(ChunkError::BadSize),
            },
            State::Ext => match b {
                b'\r' => State::SizeLf,
                // RFC 9112 §7.1.1 chunk-ext is tokens and quoted strings; we
                // forward it untouched but refuse controls (bare LF, NUL).
                b'\t' | 0x20..=0x7e | 0x80..=0xff => {
                    self.line_len += 1;
                    if self.line_len > MAX_EXT {
                        return Err(ChunkError::TooLong);
                    }
                    State::Ext
                }
                _ => return Err(ChunkError::BadSize),
            },
            State::SizeLf => {
                if b != b'\n' {
                    return Err(ChunkError::BadSize);
                }
                let size = std::mem::take(&mut self.size);
                if size == 0 {
                    State::TrailerStart
                } else {
                    self.body_bytes = self.body_bytes.saturating_add(size);
                    if self.body_bytes > self.max_body {
                        return Err(ChunkError::BodyTooLarge);
                    }
                    self.remaining = size;
                    State::Data
                }
            }
            State::Data => unreachable_data(),
            State::DataCr => {
                if b != b'\r' {
                    return Err(ChunkError::BadDataEnd);
                }
                State::DataLf
            }
            State::DataLf => {
                if b != b'\n' {
                    return Err(ChunkError::BadDataEnd);
                }
                State::Size { digits: 0 }
            }
            State::TrailerStart => match b {
                b'\r' => State::EndLf,
                // obs-fold (a line starting with whitespace) is not allowed in trailers either.
                b' ' | b'\t' | b'\n' | b':' => return Err(ChunkError::BadLine),
                _ => self.trailer_byte(b)?,
            },
            State::Trailer => match b {
                b'\r' => State::TrailerLf,
                _ => self.trailer_byte(b)?,
            },
            State::TrailerLf => {
                if b != b'\n' {
                    return Err(ChunkError::BadLine);
                }
                State::TrailerStart
            }
            State::EndLf => {
                if b != b'\n' {
                    return Err(ChunkError::BadLine);
                }
                State::Done
            }
            State::Done => State::Done,
        })
    }

    fn trailer_byte(&mut self, b: u8) -> Result<State, ChunkError> {
        if b == b'\n' || b == 0 || (b < 0x20 && b != b'\t') || b == 0x7f {
            return Err(ChunkError::BadLine);
        }
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.max_trailer {
            return Err(ChunkError::TooLong);
        }
        Ok(State::Trailer)
    }
}

/// `feed` handles `Data` in bulk before calling `step`; reaching it here
/// would be a bug in `feed`, so fail closed rather than mis-frame.
fn unreachable_data() -> State {
    debug_assert!(false, "step() called in Data state");
    State::Done
}

fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(input: &[u8]) -> Result<Progress, ChunkError> {
        ChunkedDecoder::new(u64::MAX, 8192).feed(input)
    }

    /// Feeds one byte at a time; must agree with `whole`.
    fn bytewise(input: &[u8]) -> Result<Progress, ChunkError> {
        let mut d = ChunkedDecoder::new(u64::MAX, 8192);
        let mut consumed = 0;
        for b in input {
            let p = d.feed(std::slice::from_ref(b))?;
            consumed += p.consumed;
            if p.done {
                return Ok(Progress {
                    consumed,
                    done: true,
                });
            }
        }
        Ok(Progress {
            consumed,
            done: false,
        })
    }

    #[test]
    fn finds_the_end_and_leaves_the_next_message() {
        let msg = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: yes\r\n\r\nGET / HTTP/1.1\r\n";
        let end = msg.len() - b"GET / HTTP/1.1\r\n".len();
        for f in [whole, bytewise] {
            let p = f(msg).unwrap();
            assert_eq!(
                p,
                Progress {
                    consumed: end,
                    done: true
                }
            );
        }
        let mut d = ChunkedDecoder::new(u64::MAX, 100);
        d.feed(msg).unwrap();
        assert_eq!(d.body_bytes(), 9);
    }

    #[test]
    fn partial_input_is_not_done() {
        let p = whole(b"10\r\n0123456789").unwrap();
        assert_eq!(
            p,
            Progress {
                consumed: 14,
                done: false
            }
        );
    }

    #[test]
    fn rejects_smuggling_shapes() {
        for bad in [
            &b"-1\r\n"[..],
            b" 4\r\nabcd\r\n0\r\n\r\n",
            b"4 \r\nabcd\r\n0\r\n\r\n",
            b"0x4\r\nabcd\r\n0\r\n\r\n",
            b"4\nabcd\r\n0\r\n\r\n",
            b"4\r\nabcdX\r\n0\r\n\r\n",
            b"4\r\nabcd\n0\r\n\r\n",
            b"\r\n",
            b"4\r\nabcd\r\n0\r\n\n",
            b"0\r\n folded: x\r\n\r\n",
            b"0\r\nbad\x00trailer\r\n\r\n",
            b"4;a\nb\r\nabcd\r\n0\r\n\r\n",
            b"1000000000000000\r\n",
        ] {
            assert!(
                whole(bad).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(bad)
            );
            assert!(
                bytewise(bad).is_err(),
                "bytewise accepted {:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn enforces_body_and_trailer_limits() {
        let mut d = ChunkedDecoder::new(3, 8192);
        assert_eq!(d.feed(b"4\r\n"), Err(ChunkError::BodyTooLarge));
        let mut d = ChunkedDecoder::new(100, 4);
        assert_eq!(d.feed(b"0\r\nabcde"), Err(ChunkError::TooLong));
    }
}
