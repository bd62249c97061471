//! Counting (and capping) the bytes an unpack reads.

use std::cell::Cell;
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;

/// Counts bytes read through [`Metered`], and optionally caps them.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    read: Cell<u64>,
    budget: Cell<Option<u64>>,
    exhausted: Cell<bool>,
}

impl Meter {
    pub(crate) fn read(&self) -> u64 {
        self.read.get()
    }

    /// Caps the bytes read from now on (`None`: no cap).
    pub(crate) fn set_budget(&self, budget: Option<u64>) {
        self.budget.set(budget);
    }

    /// Whether a read failed because the budget ran out.
    pub(crate) fn exhausted(&self) -> bool {
        self.exhausted.get()
    }
}

/// A reader that reports to a [`Meter`].
pub(crate) struct Metered<R> {
    inner: R,
    meter: Rc<Meter>,
}

impl<R> Metered<R> {
    pub(crate) fn new(inner: R, meter: Rc<Meter>) -> Self {
        Metered { inner, meter }
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = match self.meter.budget.get() {
            Some(0) if !buf.is_empty() => {
                self.meter.exhausted.set(true);
                return Err(io::Error::other("tar header budget exhausted"));
            }
            Some(budget) => buf.len().min(usize::try_from(budget).unwrap_or(usize::MAX)),
            None => buf.len(),
        };
        let n = self.inner.read(&mut buf[..len])?;
        self.meter.read.set(self.meter.read.get() + n as u64);
        if let Some(budget) = self.meter.budget.get() {
            self.meter.budget.set(Some(budget.saturating_sub(n as u64)));
        }
        Ok(n)
    }
}

impl<R: Seek> Seek for Metered<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}
