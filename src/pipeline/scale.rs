//! `headendscale`: the ladder's scaler, a GStreamer element around swscale
//! (`swscale.rs`), registered statically by [`super::init`].
//!
//! It takes I420 and gives I420 of any size, as the capsfilter after it asks; both
//! sizes come from caps, and the pixel aspect ratio is the capsfilter's to set (the
//! ladder always fixes width, height and a square pixel). Same size in and out passes
//! pictures through untouched. Where downstream leaves the size open it keeps the
//! input's.

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::subclass::prelude::*;

/// The element's factory name.
pub(crate) const FACTORY: &str = "headendscale";

glib::wrapper! {
    pub struct Scale(ObjectSubclass<imp::Scale>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Registers `headendscale` with GStreamer, for this process.
pub(crate) fn register() -> Result<(), glib::BoolError> {
    gst::Element::register(None, FACTORY, gst::Rank::NONE, Scale::static_type())
}

mod imp {
    use std::sync::{LazyLock, Mutex, PoisonError};

    use gst_video::VideoFrameExt;

    use super::*;
    use crate::pipeline::swscale::{Plane, Scaler};

    static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
        gst::DebugCategory::new(
            FACTORY,
            gst::DebugColorFlags::empty(),
            Some("The headend's bilinear I420 scaler (swscale)"),
        )
    });

    #[derive(Default)]
    pub struct Scale {
        /// The scaler for the negotiated sizes; `None` before caps or in passthrough.
        state: Mutex<Option<Scaler>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for Scale {
        const NAME: &'static str = "HeadendScale";
        type Type = super::Scale;
        type ParentType = gst_video::VideoFilter;
    }

    impl ObjectImpl for Scale {}
    impl GstObjectImpl for Scale {}

    impl ElementImpl for Scale {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
                gst::subclass::ElementMetadata::new(
                    "Headend scaler",
                    "Filter/Converter/Video/Scaler",
                    "Scales I420 video with FFmpeg's swscale (bilinear)",
                    "headend",
                )
            });
            Some(&*METADATA)
        }

        fn pad_templates() -> &'static [gst::PadTemplate] {
            static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
                let caps = gst_video::VideoCapsBuilder::new()
                    .format(gst_video::VideoFormat::I420)
                    .build();
                [gst::PadDirection::Src, gst::PadDirection::Sink]
                    .into_iter()
                    .filter_map(|direction| {
                        let name = if direction == gst::PadDirection::Src {
                            "src"
                        } else {
                            "sink"
                        };
                        gst::PadTemplate::new(name, direction, gst::PadPresence::Always, &caps).ok()
                    })
                    .collect()
            });
            TEMPLATES.as_ref()
        }
    }

    impl BaseTransformImpl for Scale {
        const MODE: gst_base::subclass::BaseTransformMode =
            gst_base::subclass::BaseTransformMode::NeverInPlace;
        const PASSTHROUGH_ON_SAME_CAPS: bool = true;
        const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

        /// The same caps first (passthrough), then the same with any size and pixel
        /// aspect ratio.
        fn transform_caps(
            &self,
            _direction: gst::PadDirection,
            caps: &gst::Caps,
            filter: Option<&gst::Caps>,
        ) -> Option<gst::Caps> {
            let mut any_size = caps.clone();
            for s in any_size.make_mut().iter_mut() {
                s.set("width", gst::IntRange::new(1, i32::MAX));
                s.set("height", gst::IntRange::new(1, i32::MAX));
                s.remove_field("pixel-aspect-ratio");
            }
            let mut caps = caps.clone();
            caps.merge(any_size);
            Some(match filter {
                Some(filter) => filter.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
                None => caps,
            })
        }

        /// Where downstream leaves the size open, the input's size and a square pixel.
        fn fixate_caps(
            &self,
            _direction: gst::PadDirection,
            caps: &gst::Caps,
            othercaps: gst::Caps,
        ) -> gst::Caps {
            let mut othercaps = othercaps;
            othercaps.truncate();
            if let (Some(from), Some(to)) =
                (caps.structure(0), othercaps.make_mut().structure_mut(0))
            {
                for field in ["width", "height"] {
                    if let Ok(value) = from.get::<i32>(field) {
                        to.fixate_field_nearest_int(field, value);
                    }
                }
                if to.has_field("pixel-aspect-ratio") {
                    to.fixate_field_nearest_fraction(
                        "pixel-aspect-ratio",
                        gst::Fraction::new(1, 1),
                    );
                }
            }
            othercaps.fixate();
            othercaps
        }

        fn stop(&self) -> Result<(), gst::ErrorMessage> {
            *self.state.lock().unwrap_or_else(PoisonError::into_inner) = None;
            Ok(())
        }
    }

    impl VideoFilterImpl for Scale {
        fn set_info(
            &self,
            _incaps: &gst::Caps,
            in_info: &gst_video::VideoInfo,
            _outcaps: &gst::Caps,
            out_info: &gst_video::VideoInfo,
        ) -> Result<(), gst::LoggableError> {
            let (from, to) = (
                (in_info.width(), in_info.height()),
                (out_info.width(), out_info.height()),
            );
            let scaler = if from == to {
                None
            } else {
                let scaler = Scaler::new(from, to).ok_or_else(|| {
                    gst::loggable_error!(CAT, "swscale cannot scale {from:?} to {to:?}")
                })?;
                gst::debug!(CAT, imp = self, "Scaling {from:?} to {to:?}.");
                Some(scaler)
            };
            *self.state.lock().unwrap_or_else(PoisonError::into_inner) = scaler;
            Ok(())
        }

        fn transform_frame(
            &self,
            inframe: &gst_video::VideoFrameRef<&gst::BufferRef>,
            outframe: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
        ) -> Result<gst::FlowSuccess, gst::FlowError> {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(scaler) = state.as_mut() else {
                return Err(self.fail("not negotiated"));
            };
            let strides = inframe.plane_stride();
            let mut planes = [Plane {
                data: &[],
                stride: 0,
            }; 3];
            for (i, plane) in planes.iter_mut().enumerate() {
                *plane = Plane {
                    data: inframe
                        .plane_data(i as u32)
                        .map_err(|_| self.fail("cannot read an input plane"))?,
                    stride: usize::try_from(strides[i])
                        .map_err(|_| self.fail("negative stride"))?,
                };
            }
            let picture = scaler
                .scale(planes)
                .ok_or_else(|| self.fail("swscale did not scale the picture"))?;
            for i in 0..3 {
                let stride = usize::try_from(outframe.plane_stride()[i as usize])
                    .map_err(|_| self.fail("negative stride"))?;
                let plane = outframe
                    .plane_data_mut(i)
                    .map_err(|_| self.fail("cannot write an output plane"))?;
                if !picture.copy_plane(i as usize, plane, stride) {
                    return Err(self.fail("an output plane is too small"));
                }
            }
            Ok(gst::FlowSuccess::Ok)
        }
    }

    impl Scale {
        /// Posts an element error naming `what` and returns the flow error for it.
        fn fail(&self, what: &str) -> gst::FlowError {
            gst::element_imp_error!(self, gst::CoreError::Failed, ("Scaling failed: {}", what));
            gst::FlowError::Error
        }
    }
}

#[cfg(test)]
mod tests {
    use gst_app::AppSink;
    use gst_video::VideoFrameExt;

    use super::*;

    /// The first picture `launch` gives its appsink `sink`: its caps and luma plane.
    fn first_picture(launch: &str) -> (gst::Caps, Vec<u8>) {
        crate::pipeline::init().expect("GStreamer");
        let pipeline = gst::parse::launch(launch)
            .expect("pipeline")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        let sink = pipeline
            .by_name("sink")
            .and_then(|e| e.downcast::<AppSink>().ok())
            .expect("appsink");
        pipeline.set_state(gst::State::Playing).expect("playing");
        let sample = sink.pull_sample().expect("a picture");
        pipeline.set_state(gst::State::Null).expect("stopped");
        let caps = sample.caps().expect("caps").to_owned();
        let info = gst_video::VideoInfo::from_caps(&caps).expect("video caps");
        let buffer = sample.buffer().expect("buffer");
        let frame =
            gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).expect("readable");
        let (w, h) = (info.width() as usize, info.height() as usize);
        let stride = frame.plane_stride()[0] as usize;
        let data = frame.plane_data(0).expect("luma");
        let luma = (0..h)
            .flat_map(|y| data[y * stride..y * stride + w].iter().copied())
            .collect();
        (caps, luma)
    }

    fn size(caps: &gst::Caps) -> (i32, i32) {
        let s = caps.structure(0).expect("structure");
        (
            s.get("width").expect("width"),
            s.get("height").expect("height"),
        )
    }

    /// Peak signal-to-noise ratio of `a` against `b`, in dB.
    fn psnr(a: &[u8], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        let mse = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        10.0 * (255.0 * 255.0 / mse.max(1e-9)).log10()
    }

    const SOURCE: &str = "videotestsrc num-buffers=1 pattern=pinwheel ! \
                          video/x-raw,format=I420,width=1920,height=1080";

    #[test]
    fn scales_to_the_size_downstream_asks_like_videoscale() {
        let target = "video/x-raw,width=854,height=480,pixel-aspect-ratio=1/1";
        let (caps, ours) = first_picture(&format!(
            "{SOURCE} ! {FACTORY} ! {target} ! appsink name=sink"
        ));
        assert_eq!(size(&caps), (854, 480));
        // GStreamer's own widened bilinear filter, for reference.
        let (_, theirs) = first_picture(&format!(
            "{SOURCE} ! videoscale method=bilinear2 ! {target} ! appsink name=sink"
        ));
        let db = psnr(&ours, &theirs);
        assert!(db > 30.0, "{db:.1} dB from videoscale's picture");
        // A picture of 854 (odd chroma width) scales on, as the next rendition would.
        let (caps, smaller) = first_picture(&format!(
            "{SOURCE} ! {FACTORY} ! {target} ! {FACTORY} ! video/x-raw,width=640,height=360 \
             ! appsink name=sink"
        ));
        assert_eq!(size(&caps), (640, 360));
        assert!(smaller.iter().any(|&v| v > 200) && smaller.iter().any(|&v| v < 50));
    }

    #[test]
    fn the_same_size_or_an_open_size_passes_pictures_through() {
        let (_, direct) = first_picture(&format!("{SOURCE} ! appsink name=sink"));
        for downstream in [
            "video/x-raw,width=1920,height=1080 ! appsink name=sink",
            "appsink name=sink",
        ] {
            let (caps, scaled) = first_picture(&format!("{SOURCE} ! {FACTORY} ! {downstream}"));
            assert_eq!(size(&caps), (1920, 1080), "{downstream}");
            assert!(scaled == direct, "{downstream}: the picture changed");
        }
    }
}
