//! The raw socket's two directions, for the one task that owns it: [`Writes`] holds the frames
//! taken off the queue and writes several of them with one vectored write (the payload bytes
//! are the shared, already-encoded frame: only a few head bytes per frame are new), and
//! [`poll_read_into`] reads through a stack buffer into the decoder. Neither keeps memory
//! while the connection is idle.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::codec::{Decoder, MAX_HEAD, head};

/// Frames taken off the queue per write: one system call for all of them, then the client's
/// frames get a look before the next batch.
pub const WRITE_BATCH: usize = 64;

/// Bytes read per call, on the stack.
const READ_CHUNK: usize = 4096;

/// One server frame: its head and its (shared) payload.
struct Outgoing {
    head: [u8; MAX_HEAD],
    head_len: u8,
    payload: Bytes,
}

impl Outgoing {
    fn len(&self) -> usize {
        usize::from(self.head_len) + self.payload.len()
    }
}

/// Frames to write, the first perhaps partly written.
#[derive(Default)]
pub struct Writes {
    frames: VecDeque<Outgoing>,
    /// Bytes of the first frame already written.
    done: usize,
}

impl Writes {
    /// Queues a frame with `opcode` and `payload`.
    pub fn push(&mut self, opcode: u8, payload: Bytes) {
        let (head, head_len) = head(opcode, payload.len());
        self.frames.push_back(Outgoing {
            head,
            head_len: head_len as u8,
            payload,
        });
    }

    /// Frames waiting (the partly written one included).
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether everything has been written.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Drops the frames not yet started (an abrupt close). A frame already partly written is
    /// kept: the client could not read anything after half a frame, the close frame included.
    pub fn drop_unstarted(&mut self) {
        let keep = usize::from(self.done > 0);
        self.frames.truncate(keep);
    }

    /// Gives back the memory of a drained batch (called when the connection is idle).
    pub fn trim(&mut self) {
        if self.frames.is_empty() {
            self.frames = VecDeque::new();
        }
    }

    /// Frames the batch has room for without growing.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.frames.capacity()
    }

    /// Writes until everything is written (`Ready(Ok)`), the socket is full (`Pending`) or it
    /// fails. Up to [`WRITE_BATCH`] frames go out per vectored write.
    pub fn poll_write<T: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut T,
    ) -> Poll<io::Result<()>> {
        while !self.frames.is_empty() {
            let mut slices = [IoSlice::new(&[]); 2 * WRITE_BATCH];
            let mut used = 0;
            let mut skip = self.done;
            for frame in self.frames.iter().take(WRITE_BATCH) {
                for part in [
                    &frame.head[..usize::from(frame.head_len)],
                    &frame.payload[..],
                ] {
                    if skip >= part.len() {
                        skip -= part.len();
                        continue;
                    }
                    slices[used] = IoSlice::new(&part[skip..]);
                    skip = 0;
                    used += 1;
                }
            }
            let written = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..used]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(written);
        }
        Pin::new(io).poll_flush(cx)
    }

    fn advance(&mut self, written: usize) {
        self.done += written;
        while let Some(first) = self.frames.front() {
            if self.done < first.len() {
                break;
            }
            self.done -= first.len();
            self.frames.pop_front();
        }
    }
}

/// Reads what the client sent into `decoder`, through a stack buffer (nothing is allocated for
/// a silent client). `Ready(Ok(false))` at the end of the stream.
pub fn poll_read_into<T: AsyncRead + Unpin>(
    cx: &mut Context<'_>,
    io: &mut T,
    decoder: &mut Decoder,
) -> Poll<io::Result<bool>> {
    let mut chunk = [0u8; READ_CHUNK];
    let mut buf = ReadBuf::new(&mut chunk);
    ready!(Pin::new(io).poll_read(cx, &mut buf))?;
    if buf.filled().is_empty() {
        return Poll::Ready(Ok(false));
    }
    decoder.extend(buf.filled());
    Poll::Ready(Ok(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::codec::opcode;
    use std::future::poll_fn;
    use tokio::io::AsyncReadExt;

    /// Writes `writes` into a pipe that holds `room` bytes, reading them back as they come.
    async fn write_through(writes: &mut Writes, room: usize) -> Vec<u8> {
        let (mut tx, mut rx) = tokio::io::duplex(room);
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            rx.read_to_end(&mut all).await.expect("read");
            all
        });
        poll_fn(|cx| writes.poll_write(cx, &mut tx))
            .await
            .expect("written");
        drop(tx);
        reader.await.expect("reader")
    }

    #[tokio::test]
    async fn frames_are_written_whole_and_in_order_through_a_narrow_pipe() {
        let mut writes = Writes::default();
        let mut expected = Vec::new();
        for i in 0..200usize {
            let payload = Bytes::from("x".repeat(i * 7));
            let (head, used) = head(opcode::TEXT, payload.len());
            expected.extend_from_slice(&head[..used]);
            expected.extend_from_slice(&payload);
            writes.push(opcode::TEXT, payload);
        }
        // 100 bytes at a time: frames are cut mid-head and mid-payload.
        assert_eq!(write_through(&mut writes, 100).await, expected);
        assert!(writes.is_empty());
    }

    #[tokio::test]
    async fn a_burst_grows_the_batch_and_trim_gives_it_back() {
        let mut writes = Writes::default();
        for _ in 0..WRITE_BATCH {
            writes.push(opcode::TEXT, Bytes::from_static(b"frame"));
        }
        assert!(writes.capacity() >= WRITE_BATCH);
        write_through(&mut writes, 64 * 1024).await;
        writes.trim();
        assert_eq!(writes.capacity(), 0);
    }

    #[test]
    fn an_abrupt_close_keeps_only_the_frame_already_started() {
        let mut writes = Writes::default();
        writes.push(opcode::TEXT, Bytes::from_static(b"first"));
        writes.push(opcode::TEXT, Bytes::from_static(b"second"));
        writes.advance(3);
        writes.drop_unstarted();
        assert_eq!(writes.len(), 1);
        let mut fresh = Writes::default();
        fresh.push(opcode::TEXT, Bytes::from_static(b"unsent"));
        fresh.drop_unstarted();
        assert!(fresh.is_empty());
    }
}
