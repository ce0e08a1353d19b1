//! CSV rows as the exports promise them: RFC 4180 (CRLF, quoting where needed), UTF-8, ISO-8601 UTC
//! times, sizes in bytes plus MB, and every text cell neutralised against formula injection.

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// A text cell that a spreadsheet would read as a formula gets a leading `'`: it starts with
/// `=`, `+`, `-`, `@`, a tab or a carriage return (after leading spaces/newlines for the first
/// four, which spreadsheets skip).
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    let dangerous_start = cell.starts_with(['\t', '\r'])
        || cell
            .trim_start_matches([' ', '\n'])
            .starts_with(['=', '+', '-', '@']);
    if dangerous_start {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// Writes records into an in-memory buffer that the uploader takes whole parts from.
pub struct CsvBuffer {
    writer: csv::Writer<Vec<u8>>,
    scratch: String,
}

impl CsvBuffer {
    pub fn new(capacity: usize) -> Self {
        CsvBuffer {
            writer: writer(Vec::with_capacity(capacity)),
            scratch: String::with_capacity(64),
        }
    }

    /// Bytes in the buffer (the writer's own small buffer is flushed first).
    pub fn flushed_len(&mut self) -> std::io::Result<usize> {
        self.writer.flush()?;
        Ok(self.writer.get_ref().len())
    }

    /// Bytes written into the buffer so far, without flushing (lags by at most the csv
    /// writer's internal 8 KiB buffer).
    pub fn approx_len(&self) -> usize {
        self.writer.get_ref().len()
    }

    /// Takes everything written so far (between records) and starts a fresh buffer of
    /// `capacity`.
    pub fn take(&mut self, capacity: usize) -> std::io::Result<Vec<u8>> {
        let full = std::mem::replace(&mut self.writer, writer(Vec::with_capacity(capacity)));
        full.into_inner().map_err(|e| e.into_error())
    }

    pub fn header(&mut self, names: &[&str]) -> csv::Result<()> {
        self.writer.write_record(names)
    }

    pub fn text(&mut self, v: &str) -> csv::Result<()> {
        self.writer.write_field(neutralise(v).as_bytes())
    }

    pub fn opt_text(&mut self, v: Option<&str>) -> csv::Result<()> {
        self.text(v.unwrap_or(""))
    }

    pub fn int(&mut self, v: i64) -> csv::Result<()> {
        self.scratch.clear();
        let _ = write!(self.scratch, "{v}");
        self.writer.write_field(self.scratch.as_bytes())
    }

    pub fn opt_int(&mut self, v: Option<i64>) -> csv::Result<()> {
        match v {
            Some(v) => self.int(v),
            None => self.writer.write_field(b""),
        }
    }

    /// MB with two decimals, the API's `mb` view of a byte count.
    pub fn mb(&mut self, bytes: Option<i64>) -> csv::Result<()> {
        match bytes {
            Some(b) => {
                self.scratch.clear();
                let _ = write!(self.scratch, "{:.2}", crate::values::mb(b));
                self.writer.write_field(self.scratch.as_bytes())
            }
            None => self.writer.write_field(b""),
        }
    }

    pub fn time(&mut self, v: Option<DateTime<Utc>>) -> csv::Result<()> {
        match v {
            Some(t) => self
                .writer
                .write_field(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => self.writer.write_field(b""),
        }
    }

    pub fn date(&mut self, v: Option<NaiveDate>) -> csv::Result<()> {
        match v {
            Some(d) => {
                self.scratch.clear();
                let _ = write!(self.scratch, "{}", d.format("%Y-%m-%d"));
                self.writer.write_field(self.scratch.as_bytes())
            }
            None => self.writer.write_field(b""),
        }
    }

    pub fn end_row(&mut self) -> csv::Result<()> {
        self.writer.write_record(None::<&[u8]>)
    }
}

fn writer(buf: Vec<u8>) -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised() {
        for bad in [
            "=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "  =cmd", "\n=x",
        ] {
            assert!(neutralise(bad).starts_with('\''), "{bad:?}");
        }
        for good in ["orders", "", "a=b", "1-2", " x", "'quoted"] {
            assert_eq!(neutralise(good), good);
        }
    }

    #[test]
    fn rows_are_rfc4180_with_crlf() {
        let mut b = CsvBuffer::new(64);
        b.header(&["name", "size_bytes", "size_mb", "at"]).unwrap();
        b.text("a,\"b\"\nc").unwrap();
        b.int(-5).unwrap();
        b.mb(Some(123_456_789)).unwrap();
        b.time(Some(
            DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
                .unwrap()
                .with_timezone(&Utc),
        ))
        .unwrap();
        b.end_row().unwrap();
        b.text("=x").unwrap();
        b.opt_int(None).unwrap();
        b.mb(None).unwrap();
        b.time(None).unwrap();
        b.end_row().unwrap();
        let out = String::from_utf8(b.take(0).unwrap()).unwrap();
        assert_eq!(
            out,
            "name,size_bytes,size_mb,at\r\n\"a,\"\"b\"\"\nc\",-5,117.74,2026-01-02T03:04:05Z\r\n'=x,,,\r\n"
        );
    }
}
