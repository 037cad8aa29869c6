//! Reading input lines: files or stdin, each line capped in size, and
//! `--follow` that survives rotation (the path now names a new file) and
//! truncation (the file shrank).

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

/// One line of input.
pub(crate) enum Line<'a> {
    /// A complete line, without its newline.
    Text(&'a str),
    /// Longer than the limit (the whole line was skipped); its length.
    TooLong(usize),
    /// Not UTF-8.
    BadUtf8,
    /// Not a line: every byte read so far has been handed over, and the
    /// next read may wait for more (a pipe, a followed file). What was
    /// gathered from earlier lines should go on now.
    Pause,
}

/// Where a line came from, for messages (`app.log:42`). A file name that
/// is not UTF-8 is shown with replacement characters.
pub(crate) struct Origin<'a> {
    pub(crate) name: &'a str,
    pub(crate) line: u64,
}

struct Source {
    name: String,
    path: Option<PathBuf>,
    reader: Box<dyn BufRead>,
    line_no: u64,
    pos: u64,
    inode: Option<u64>,
    partial: Vec<u8>,
    partial_len: usize,
    eof: bool,
}

fn inode(file: &File) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        file.metadata().ok().map(|m| m.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        None
    }
}

fn path_inode(path: &Path) -> Option<u64> {
    File::open(path).ok().and_then(|f| inode(&f))
}

impl Source {
    fn new(
        name: String,
        path: Option<PathBuf>,
        reader: Box<dyn BufRead>,
        inode: Option<u64>,
    ) -> Self {
        Source {
            name,
            path,
            reader,
            line_no: 0,
            pos: 0,
            inode,
            partial: Vec::new(),
            partial_len: 0,
            eof: false,
        }
    }
}

fn open(path: &Path) -> io::Result<Source> {
    if path == Path::new("-") {
        let stdin = BufReader::with_capacity(1 << 16, io::stdin());
        return Ok(Source::new("<stdin>".into(), None, Box::new(stdin), None));
    }
    let file = File::open(path)?;
    let ino = inode(&file);
    let reader = BufReader::with_capacity(1 << 16, file);
    let name = path.display().to_string();
    Ok(Source::new(name, Some(path.into()), Box::new(reader), ino))
}

/// Open every input up front so that a missing file is reported before any
/// work starts.
pub(crate) fn open_all(paths: &[PathBuf]) -> Result<Vec<SourceHandle>, String> {
    paths
        .iter()
        .map(|p| {
            open(p)
                .map(SourceHandle)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))
        })
        .collect()
}

/// An opened input.
pub(crate) struct SourceHandle(Source);

/// What reading one source did.
enum Step {
    Line,
    Eof,
}

/// Append to the line being assembled, keeping at most `max` bytes (the
/// length still counts everything, to report an over-long line).
fn take(partial: &mut Vec<u8>, len: &mut usize, bytes: &[u8], max: usize) {
    *len += bytes.len();
    if partial.len() < max {
        let room = max - partial.len();
        partial.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

/// Hand one complete line to `f`: over-long, not UTF-8, or text (a final
/// `\r` dropped).
fn emit_line(
    name: &str,
    line_no: u64,
    mut bytes: &[u8],
    full_len: usize,
    max: usize,
    f: &mut impl FnMut(Origin<'_>, Line<'_>),
) {
    let origin = Origin {
        name,
        line: line_no,
    };
    if full_len > max {
        return f(origin, Line::TooLong(full_len));
    }
    if bytes.last() == Some(&b'\r') {
        bytes = &bytes[..bytes.len() - 1];
    }
    // simdutf8's check, vectorised with the instructions the CPU has (the
    // same answers as `std::str::from_utf8`). On 60 000
    // `scripts/bench-ingest` lines (callgrind), the check went from 19.5 M
    // instructions (`std::str::from_utf8`) to 9.1 M.
    match simdutf8::basic::from_utf8(bytes) {
        Ok(s) => f(origin, Line::Text(s)),
        Err(_) => f(origin, Line::BadUtf8),
    }
}

impl Source {
    /// Read up to the next newline and hand the line to `f`; `Eof` when no
    /// complete line is available yet. A line that lies whole in the read
    /// buffer is handed over in place, without a copy; only a line split
    /// across reads is assembled in `partial` (keeping at most `max`
    /// bytes).
    fn read_line(
        &mut self,
        max: usize,
        f: &mut impl FnMut(Origin<'_>, Line<'_>),
    ) -> io::Result<Step> {
        loop {
            // (line complete, bytes used, assembled in `partial`, bytes
            // that were in the buffer)
            let (done, used, assembled, held) = {
                let buf = match self.reader.fill_buf() {
                    Ok(b) => b,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                if buf.is_empty() {
                    return Ok(Step::Eof);
                }
                match memchr::memchr(b'\n', buf) {
                    Some(i) if self.partial_len == 0 => {
                        self.line_no += 1;
                        emit_line(&self.name, self.line_no, &buf[..i], i, max, f);
                        (true, i + 1, false, buf.len())
                    }
                    Some(i) => {
                        take(&mut self.partial, &mut self.partial_len, &buf[..i], max);
                        (true, i + 1, true, buf.len())
                    }
                    None => {
                        let n = buf.len();
                        take(&mut self.partial, &mut self.partial_len, &buf[..n], max);
                        (false, n, false, n)
                    }
                }
            };
            self.reader.consume(used);
            self.pos += used as u64;
            if assembled {
                self.emit_partial(max, f);
            }
            if used == held {
                f(
                    Origin {
                        name: &self.name,
                        line: self.line_no,
                    },
                    Line::Pause,
                );
            }
            if done {
                return Ok(Step::Line);
            }
        }
    }

    /// The line assembled in `partial` (split across reads, or the last one
    /// without a final newline).
    fn emit_partial(&mut self, max: usize, f: &mut impl FnMut(Origin<'_>, Line<'_>)) {
        self.line_no += 1;
        emit_line(
            &self.name,
            self.line_no,
            &self.partial,
            self.partial_len,
            max,
            f,
        );
        self.partial.clear();
        self.partial_len = 0;
    }

    /// In follow mode at EOF: reopen a rotated file, rewind a truncated one.
    fn check_rotation(&mut self) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let Ok(meta) = std::fs::metadata(&path) else {
            return; // mid-rotation: the new file is not there yet
        };
        let rotated = self.inode.is_some() && path_inode(&path) != self.inode;
        let truncated = meta.len() < self.pos;
        if rotated || truncated {
            if let Ok(file) = File::open(&path) {
                self.inode = inode(&file);
                self.reader = Box::new(BufReader::with_capacity(1 << 16, file));
                self.pos = 0;
                self.line_no = 0;
                self.partial.clear();
                self.partial_len = 0;
            }
        }
    }
}

/// Call `f` for every line of every source, in order. With `follow`, keep
/// polling files for new lines until `stop` is set. Returns the read errors
/// met (a source that fails is reported and skipped).
pub(crate) fn for_each_line(
    sources: Vec<SourceHandle>,
    follow: bool,
    max: usize,
    stop: &AtomicBool,
    mut f: impl FnMut(Origin<'_>, Line<'_>),
) -> Vec<String> {
    let mut sources: Vec<Source> = sources.into_iter().map(|s| s.0).collect();
    let mut errors = Vec::new();
    loop {
        let mut progressed = false;
        for s in sources.iter_mut().filter(|s| !s.eof) {
            let mut n = 0u32;
            loop {
                if n % 1024 == 0 && stop.load(Ordering::Relaxed) {
                    break;
                }
                n = n.wrapping_add(1);
                match s.read_line(max, &mut f) {
                    Ok(Step::Line) => progressed = true,
                    Ok(Step::Eof) => {
                        if !follow || s.path.is_none() {
                            // A last line without a newline still counts.
                            if s.partial_len > 0 {
                                s.emit_partial(max, &mut f);
                            }
                            s.eof = true;
                        } else {
                            s.check_rotation();
                        }
                        // Whatever comes next (another source, a wait for
                        // more), what was gathered goes on now.
                        f(
                            Origin {
                                name: &s.name,
                                line: s.line_no,
                            },
                            Line::Pause,
                        );
                        break;
                    }
                    Err(e) => {
                        errors.push(format!("{}: read error: {e}", s.name));
                        s.eof = true;
                        break;
                    }
                }
            }
        }
        if stop.load(Ordering::Relaxed) || sources.iter().all(|s| s.eof) {
            return errors;
        }
        if !progressed {
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Read everything from a reader into lines (tests).
#[cfg(test)]
fn collect(input: &[u8], max: usize) -> Vec<String> {
    let reader = BufReader::with_capacity(7, io::Cursor::new(input.to_vec()));
    let src = Source::new("t".into(), None, Box::new(reader), None);
    let mut out = Vec::new();
    for_each_line(
        vec![SourceHandle(src)],
        false,
        max,
        &AtomicBool::new(false),
        |o, l| {
            out.push(match l {
                Line::Text(t) => format!("{}:{}", o.line, t),
                Line::TooLong(n) => format!("{}:too long {n}", o.line),
                Line::BadUtf8 => format!("{}:bad utf8", o.line),
                Line::Pause => return,
            })
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_caps_utf8_and_missing_final_newline() {
        let mut input = b"one\r\ntwo\n".to_vec();
        input.extend_from_slice(&[b'x'; 40]);
        input.extend_from_slice(b"\n\xff\xfe\nthree");
        assert_eq!(
            collect(&input, 20),
            ["1:one", "2:two", "3:too long 40", "4:bad utf8", "5:three"]
        );
        assert!(collect(b"", 20).is_empty());
    }

    proptest::proptest! {
        /// A line is text exactly when the standard library's check says it
        /// is UTF-8, and then the same text: short lines and long ones (the
        /// vectorised check works in blocks of 64 bytes), damaged anywhere.
        #[test]
        fn utf8_check_answers_as_the_standard_library(
            text in "[a-z\u{e9}\u{4e2d}\u{1f600} ]{0,120}",
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            byte in 0x80u8..=0xff,
            damage in proptest::prelude::any::<bool>(),
        ) {
            let mut line = text.into_bytes();
            if damage && !line.is_empty() {
                let at = cut.index(line.len());
                line[at] = byte;
            }
            let want = match std::str::from_utf8(&line) {
                Ok(t) => format!("1:{t}"),
                Err(_) => "1:bad utf8".to_string(),
            };
            let mut input = line.clone();
            input.push(b'\n');
            proptest::prop_assert_eq!(collect(&input, 1 << 20), vec![want]);
        }
    }
}
