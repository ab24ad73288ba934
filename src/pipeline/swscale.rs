//! FFmpeg's libswscale for one job: bilinear scaling of 8-bit 4:2:0 planar pictures
//! (I420, `AV_PIX_FMT_YUV420P`), as `ffmpeg -vf scale=W:H:flags=bilinear` does it.
//!
//! GStreamer 1.22's `videoscale` scales the horizontal pass of this format with a
//! scalar C loop (orc has no SIMD form of it); swscale has hand-written SIMD for both
//! passes and costs about 70 % of its CPU for the same scaling (`docs/benchmarks.md`).
//! Debian 12's gst-libav has no element that wraps it, so `scale.rs` does.
//!
//! The three functions used are declared here by hand: the `-sys` crates generate
//! bindings to all of FFmpeg with bindgen (libclang at build time) and follow newer
//! FFmpeg releases than Debian 12's 5.1, for three calls whose ABI has not changed since
//! FFmpeg 1.0.
//!
//! swscale's SIMD may write up to a vector's width past the end of an output line, and
//! wants aligned output lines, so it writes into a [`Picture`] of its own (every line
//! 64-byte aligned, with room after it); [`Picture::copy_plane`] copies the lines out.

use std::ffi::{c_int, c_void};
use std::ptr::NonNull;

#[repr(C)]
struct SwsContext {
    _opaque: [u8; 0],
}

/// `AV_PIX_FMT_YUV420P`, the first value of `enum AVPixelFormat`.
const AV_PIX_FMT_YUV420P: c_int = 0;
/// `SWS_BILINEAR`: a linear filter, widened when shrinking so every input pixel counts.
const SWS_BILINEAR: c_int = 2;

#[link(name = "swscale")]
extern "C" {
    fn sws_getContext(
        src_w: c_int,
        src_h: c_int,
        src_format: c_int,
        dst_w: c_int,
        dst_h: c_int,
        dst_format: c_int,
        flags: c_int,
        src_filter: *mut c_void,
        dst_filter: *mut c_void,
        param: *const f64,
    ) -> *mut SwsContext;
    fn sws_scale(
        context: *mut SwsContext,
        src_slice: *const *const u8,
        src_stride: *const c_int,
        src_slice_y: c_int,
        src_slice_h: c_int,
        dst: *const *mut u8,
        dst_stride: *const c_int,
    ) -> c_int;
    fn sws_freeContext(context: *mut SwsContext);
}

/// Line alignment of a [`Picture`], and the room left after each line's pixels.
const ALIGN: usize = 64;

/// The size of an I420 picture's three planes: luma, then the two chroma planes.
fn plane_sizes(width: u32, height: u32) -> [(usize, usize); 3] {
    let (w, h) = (width as usize, height as usize);
    let chroma = (w.div_ceil(2), h.div_ceil(2));
    [(w, h), chroma, chroma]
}

/// One plane of a picture: where its lines start and how far apart they are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plane<'a> {
    pub data: &'a [u8],
    pub stride: usize,
}

/// An I420 picture that swscale writes into: each line 64-byte aligned and followed by
/// at least 64 spare bytes, and as many spare bytes after the last line.
pub(crate) struct Picture {
    storage: Vec<u8>,
    /// Offset of the first (aligned) byte in `storage`.
    start: usize,
    /// Each plane's offset from `start` and its stride.
    planes: [(usize, usize); 3],
    /// Each plane's width and height in bytes and lines.
    sizes: [(usize, usize); 3],
}

impl Picture {
    fn new(width: u32, height: u32) -> Picture {
        let sizes = plane_sizes(width, height);
        let mut planes = [(0, 0); 3];
        let mut offset = 0;
        for (plane, (w, h)) in planes.iter_mut().zip(sizes) {
            let stride = w.next_multiple_of(ALIGN) + ALIGN;
            *plane = (offset, stride);
            offset += stride * h;
        }
        let storage = vec![0u8; offset + 2 * ALIGN];
        let start = storage.as_ptr().align_offset(ALIGN);
        Picture {
            storage,
            start,
            planes,
            sizes,
        }
    }

    /// Copies plane `plane` (0 luma, 1 and 2 chroma) into `dst`, whose lines are
    /// `stride` bytes apart: only the picture's own bytes of each line. Returns
    /// `false`, copying nothing, if `dst` is too short for the plane's lines.
    pub(crate) fn copy_plane(&self, plane: usize, dst: &mut [u8], stride: usize) -> bool {
        let (Some(&(w, h)), Some(&(offset, from_stride))) =
            (self.sizes.get(plane), self.planes.get(plane))
        else {
            return false;
        };
        if !fits(dst.len(), stride, w, h) {
            return false;
        }
        let from = &self.storage[self.start + offset..];
        for y in 0..h {
            dst[y * stride..y * stride + w]
                .copy_from_slice(&from[y * from_stride..y * from_stride + w]);
        }
        true
    }
}

/// Whether `len` bytes hold `h` lines of `w` bytes, `stride` bytes apart.
fn fits(len: usize, stride: usize, w: usize, h: usize) -> bool {
    let Some(last) = h.checked_sub(1) else {
        return stride >= w;
    };
    stride >= w
        && last
            .checked_mul(stride)
            .and_then(|end| end.checked_add(w))
            .is_some_and(|end| len >= end)
}

/// A bilinear I420 scaler from one picture size to another.
pub(crate) struct Scaler {
    context: NonNull<SwsContext>,
    from: (u32, u32),
    to: (u32, u32),
    out: Picture,
}

// SAFETY: an SwsContext holds no thread-local state; it may move between threads as
// long as one thread at a time uses it, which `&mut self` on `scale` ensures.
unsafe impl Send for Scaler {}

impl Scaler {
    /// A scaler from `from` to `to` (width, height), or `None` if swscale refuses the
    /// sizes (zero, or too large).
    pub(crate) fn new(from: (u32, u32), to: (u32, u32)) -> Option<Scaler> {
        let dims = [from.0, from.1, to.0, to.1].map(|d| c_int::try_from(d).ok());
        let [Some(src_w), Some(src_h), Some(dst_w), Some(dst_h)] = dims else {
            return None;
        };
        // SAFETY: plain integers and null filters/parameters, which swscale documents
        // as "use the defaults"; it returns null on failure, checked below.
        let context = unsafe {
            sws_getContext(
                src_w,
                src_h,
                AV_PIX_FMT_YUV420P,
                dst_w,
                dst_h,
                AV_PIX_FMT_YUV420P,
                SWS_BILINEAR,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null(),
            )
        };
        Some(Scaler {
            context: NonNull::new(context)?,
            from,
            to,
            out: Picture::new(to.0, to.1),
        })
    }

    /// Scales the I420 picture in `src` (luma, then the two chroma planes) and returns
    /// the result, or `None` if a plane is too short for the input size and its stride.
    pub(crate) fn scale(&mut self, src: [Plane<'_>; 3]) -> Option<&Picture> {
        let sizes = plane_sizes(self.from.0, self.from.1);
        if !src
            .iter()
            .zip(sizes)
            .all(|(plane, (w, h))| fits(plane.data.len(), plane.stride, w, h))
        {
            return None;
        }
        let src_ptr = src.map(|p| p.data.as_ptr());
        let src_stride = src.map(|p| c_int::try_from(p.stride).ok());
        let [Some(s0), Some(s1), Some(s2)] = src_stride else {
            return None;
        };
        let src_stride = [s0, s1, s2, 0];
        let src_ptr = [src_ptr[0], src_ptr[1], src_ptr[2], std::ptr::null()];
        let base = self.out.start;
        let storage = self.out.storage.as_mut_ptr();
        let mut dst_ptr = [std::ptr::null_mut(); 4];
        let mut dst_stride = [0 as c_int; 4];
        for (i, &(offset, stride)) in self.out.planes.iter().enumerate() {
            // SAFETY: `base + offset` lies inside `storage` (`Picture::new` sized it).
            dst_ptr[i] = unsafe { storage.add(base + offset) };
            dst_stride[i] = c_int::try_from(stride).ok()?;
        }
        let src_h = c_int::try_from(self.from.1).ok()?;
        // SAFETY: the context was made for these sizes and format; every source plane
        // was checked above to hold its lines at its stride, and the destination planes
        // are `self.out`'s, sized with room for swscale's over-wide writes. Whole
        // picture as one slice: y 0, all lines.
        let lines = unsafe {
            sws_scale(
                self.context.as_ptr(),
                src_ptr.as_ptr(),
                src_stride.as_ptr(),
                0,
                src_h,
                dst_ptr.as_ptr(),
                dst_stride.as_ptr(),
            )
        };
        (lines == c_int::try_from(self.to.1).ok()?).then_some(&self.out)
    }
}

impl Drop for Scaler {
    fn drop(&mut self) {
        // SAFETY: made by sws_getContext and freed once, here.
        unsafe { sws_freeContext(self.context.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth I420 test picture: luma and chroma are gentle gradients.
    fn gradient(width: u32, height: u32, stride_pad: usize) -> Vec<(Vec<u8>, usize)> {
        plane_sizes(width, height)
            .into_iter()
            .enumerate()
            .map(|(p, (w, h))| {
                let stride = w + stride_pad;
                let mut data = vec![0xEE; stride * h];
                for y in 0..h {
                    for x in 0..w {
                        let v = (x * 150 / w + y * 50 / h + p * 10) as u8;
                        data[y * stride + x] = v;
                    }
                }
                (data, stride)
            })
            .collect()
    }

    fn scaled(from: (u32, u32), pad: usize, to: (u32, u32)) -> Vec<(Vec<u8>, usize)> {
        let src = gradient(from.0, from.1, pad);
        let mut scaler = Scaler::new(from, to).expect("scaler");
        let planes = [0, 1, 2].map(|i| Plane {
            data: &src[i].0,
            stride: src[i].1,
        });
        let picture = scaler.scale(planes).expect("scaled");
        let mut out: Vec<(Vec<u8>, usize)> = plane_sizes(to.0, to.1)
            .into_iter()
            .map(|(w, h)| (vec![0x11; (w + 3) * h], w + 3))
            .collect();
        for (i, (data, stride)) in out.iter_mut().enumerate() {
            assert!(picture.copy_plane(i, data, *stride));
        }
        out
    }

    #[test]
    fn a_gradient_stays_the_same_gradient_at_any_size() {
        // 854 wide: odd chroma width (427), strides that are not multiples of 16.
        for (from, to) in [((1920, 1080), (854, 480)), ((854, 480), (640, 360))] {
            let out = scaled(from, 7, to);
            let expected = gradient(to.0, to.1, 3);
            for (p, ((got, stride), (want, _))) in out.iter().zip(&expected).enumerate() {
                let (w, h) = plane_sizes(to.0, to.1)[p];
                for y in 0..h {
                    for x in 0..w {
                        let (g, e) = (got[y * stride + x], want[y * stride + x]);
                        assert!(
                            g.abs_diff(e) <= 3,
                            "{from:?} → {to:?}, plane {p} at ({x}, {y}): {g} instead of {e}"
                        );
                    }
                    // The bytes past each line's pixels are not touched.
                    assert!(got[y * stride + w..y * stride + stride]
                        .iter()
                        .all(|&b| b == 0x11));
                }
            }
        }
    }

    #[test]
    fn short_planes_and_impossible_sizes_are_refused() {
        assert!(Scaler::new((0, 480), (640, 360)).is_none());
        assert!(Scaler::new((u32::MAX, 480), (640, 360)).is_none());
        let mut scaler = Scaler::new((64, 32), (32, 16)).expect("scaler");
        let luma = vec![0u8; 64 * 31];
        let chroma = vec![0u8; 32 * 16];
        let planes = [
            Plane {
                data: &luma,
                stride: 64,
            },
            Plane {
                data: &chroma,
                stride: 32,
            },
            Plane {
                data: &chroma,
                stride: 32,
            },
        ];
        assert!(
            scaler.scale(planes).is_none(),
            "a luma plane one line short"
        );
        let picture = Picture::new(32, 16);
        assert!(
            !picture.copy_plane(0, &mut [0u8; 32 * 15], 32),
            "one line short"
        );
        assert!(
            !picture.copy_plane(1, &mut [0u8; 16 * 8], 15),
            "stride below the width"
        );
        assert!(picture.copy_plane(2, &mut [0u8; 16 * 8], 16));
        assert!(
            !picture.copy_plane(3, &mut [0u8; 16 * 8], 16),
            "no fourth plane"
        );
    }
}
