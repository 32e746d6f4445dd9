//! Reading bands a window at a time, from memory or from a file.

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::raster::Raster;
use crate::stack::Stack;

/// A rectangle of pixels of a grid: columns `col0..col0 + width`, rows `row0..row0 + height`
/// (the arguments of [`Grid::window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// First column.
    pub col0: usize,
    /// First row.
    pub row0: usize,
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

impl Window {
    /// The window of `width × height` pixels whose top-left pixel is (`col0`, `row0`).
    pub fn new(col0: usize, row0: usize, width: usize, height: usize) -> Self {
        Self {
            col0,
            row0,
            width,
            height,
        }
    }

    /// The whole of `grid`.
    pub fn of(grid: &Grid) -> Self {
        Self::new(0, 0, grid.width(), grid.height())
    }

    /// Number of pixels.
    pub fn len(&self) -> usize {
        self.width * self.height
    }

    /// Whether the window holds no pixel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One past the last column.
    pub fn col1(&self) -> usize {
        self.col0 + self.width
    }

    /// One past the last row.
    pub fn row1(&self) -> usize {
        self.row0 + self.height
    }

    /// Checks that the window is not empty and lies inside `grid`.
    ///
    /// # Errors
    /// [`Error::WindowOutOfBounds`].
    pub fn check_inside(&self, grid: &Grid) -> Result<()> {
        if self.is_empty()
            || self
                .col0
                .checked_add(self.width)
                .is_none_or(|c| c > grid.width())
            || self
                .row0
                .checked_add(self.height)
                .is_none_or(|r| r > grid.height())
        {
            return Err(Error::WindowOutOfBounds {
                col0: self.col0,
                col1: self.col0.saturating_add(self.width),
                row0: self.row0,
                row1: self.row0.saturating_add(self.height),
                width: grid.width(),
                height: grid.height(),
            });
        }
        Ok(())
    }
}

/// Named bands on one grid that can be read a window at a time: a [`Stack`] in memory, or a
/// GeoTIFF read chunk by chunk ([`crate::GeoTiffReader`]), so that a whole-scene job needs
/// memory for a window rather than for the scene.
pub trait WindowSource {
    /// The grid every band lies on.
    fn grid(&self) -> &Grid;

    /// Band names, in order.
    fn names(&self) -> &[String];

    /// The pixels of band `name` under `window`, as a raster on `grid().window(..)` with
    /// missing pixels `NaN`.
    ///
    /// # Errors
    /// [`Error::BandNotFound`], [`Error::WindowOutOfBounds`], or read errors of the source.
    fn read_window(&self, name: &str, window: Window) -> Result<Raster>;
}

impl WindowSource for Stack {
    fn grid(&self) -> &Grid {
        Stack::grid(self)
    }

    fn names(&self) -> &[String] {
        Stack::names(self)
    }

    fn read_window(&self, name: &str, window: Window) -> Result<Raster> {
        window.check_inside(Stack::grid(self))?;
        self.band(name)?
            .window(window.col0, window.row0, window.width, window.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_reads_windows_and_refuses_what_leaves_it() {
        let g = Grid::geographic(0.0, 4.0, 1.0, 6, 4).unwrap();
        let s = Stack::new(g.clone())
            .with(
                "a",
                Raster::from_fn(g.clone(), |(r, c)| (10 * r + c) as f32),
            )
            .unwrap();
        let w = s.read_window("a", Window::new(2, 1, 3, 2)).unwrap();
        assert_eq!(w.grid(), &g.window(2, 1, 3, 2).unwrap());
        assert_eq!(w.data()[(0, 0)].to_bits(), 12f32.to_bits());
        assert_eq!(w.data()[(1, 2)].to_bits(), 24f32.to_bits());
        assert!(matches!(
            s.read_window("a", Window::new(4, 0, 3, 1)),
            Err(Error::WindowOutOfBounds { .. })
        ));
        assert!(matches!(
            s.read_window("b", Window::new(0, 0, 1, 1)),
            Err(Error::BandNotFound { .. })
        ));
        assert_eq!(Window::of(&g).len(), 24);
    }
}
