//! Processing an upload (`media.uploaded`): images get a thumbnail, with their EXIF orientation
//! applied and none of their metadata (GPS and the rest) carried over, and the outcome is
//! published as `media.processed`. An image whose header claims more pixels than the budget
//! is refused without decoding (a decompression bomb); decoding waits for its share of the
//! memory budget ([`DecodeMemory`]), and an image that needs more than all of it is refused.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use shared::events::{CloudEvent, MediaProcessed, MediaUploaded, Thumbnail};

use super::{memory::DecodeMemory, Error};
use crate::domain;
use crate::store::{self, ThumbnailRow};
use crate::AppState;

/// The consumer name its deduplication records use.
pub const CONSUMER: &str = "media-svc.process";

/// Why no thumbnail was made.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("the image is {width}×{height} pixels, more than the limit of {max}: refused as a decompression bomb")]
    Bomb { width: u32, height: u32, max: u64 },
    #[error("the image could not be decoded: {0}")]
    Undecodable(String),
    #[error("decoding the image takes about {} MiB, more than the {} MiB all thumbnails may hold at once (files.thumbnail_memory_bytes)", need.div_ceil(1 << 20), budget >> 20)]
    Memory { need: u64, budget: u64 },
}

/// A thumbnail: PNG bytes and their size.
pub struct Made {
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// The memory decoding `bytes` takes, read from the image's header without decoding a pixel:
/// the decoded image twice (turning it upright may copy it), three times for a JPEG (a
/// progressive one keeps its coefficients besides), and the source once more (a decoder may
/// copy it). An image of more than `max_pixels` is refused here already.
pub fn decode_need(bytes: &[u8], max_pixels: u64) -> Result<u64, Refusal> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Refusal::Undecodable(e.to_string()))?;
    let copies = match reader.format() {
        Some(ImageFormat::Jpeg) => 3,
        _ => 2,
    };
    let decoder = reader
        .into_decoder()
        .map_err(|e| Refusal::Undecodable(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    within_pixels(width, height, max_pixels)?;
    Ok(decoder
        .total_bytes()
        .saturating_mul(copies)
        .saturating_add(bytes.len() as u64))
}

/// Refuses an image of more than `max_pixels` (a decompression bomb).
fn within_pixels(width: u32, height: u32, max_pixels: u64) -> Result<(), Refusal> {
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(Refusal::Bomb {
            width,
            height,
            max: max_pixels,
        });
    }
    Ok(())
}

/// Makes the thumbnail of a `size`-byte image that `load` reads, holding in `memory` all it
/// takes: the source from before it is read, what its decoding takes before that starts (on a
/// blocking thread). When the rest is not free at once it lets go of everything, the source
/// too, waits for all of it and reads the source again: a thumbnail never waits while holding
/// memory, so waiting ones cannot hold each other up. An image that needs more than the whole
/// budget is refused.
async fn make<F, Fut>(
    memory: &DecodeMemory,
    size: u64,
    mut load: F,
    max_pixels: u64,
    px: u32,
) -> Result<Result<Made, Refusal>, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bytes::Bytes, Error>>,
{
    let refused = |need| {
        Ok(Err(Refusal::Memory {
            need,
            budget: memory.bytes(),
        }))
    };
    let Some(mut held) = memory.reserve(size).await else {
        return refused(size);
    };
    let mut bytes = load().await?;
    // Reading a header may copy the source (a JPEG's does): off the async threads too.
    let source = bytes.clone();
    let need = tokio::task::spawn_blocking(move || decode_need(&source, max_pixels))
        .await
        .map_err(|e| Error::BadRequest(format!("reading the image's header panicked: {e}")))?;
    let need = match need {
        Ok(need) => need,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if !memory.top_up(&mut held, need) {
        drop((bytes, held));
        held = match memory.reserve(need).await {
            Some(held) => held,
            None => return refused(need),
        };
        bytes = load().await?;
    }
    tokio::task::spawn_blocking(move || {
        let made = thumbnail(&bytes, max_pixels, px);
        drop(held);
        made
    })
    .await
    .map_err(|e| Error::BadRequest(format!("thumbnailing panicked: {e}")))
}

/// Decodes `bytes` (at most `max_pixels`), turns it upright and scales it down to fit `px` ×
/// `px` (never up).
pub fn thumbnail(bytes: &[u8], max_pixels: u64, px: u32) -> Result<Made, Refusal> {
    let undecodable = |e: image::ImageError| Refusal::Undecodable(e.to_string());
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Refusal::Undecodable(e.to_string()))?;
    let mut limits = Limits::default();
    // Four bytes a pixel (RGBA8), twice over for the decoder's own buffers.
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(undecodable)?;
    let (width, height) = decoder.dimensions();
    within_pixels(width, height, max_pixels)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    image.apply_orientation(orientation);
    // A small image keeps its size (re-encoded all the same, which drops its metadata).
    let small = if image.width() <= px && image.height() <= px {
        image
    } else {
        image.thumbnail(px, px)
    };
    let mut png = Vec::new();
    small
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(undecodable)?;
    Ok(Made {
        png,
        width: small.width(),
        height: small.height(),
    })
}

/// Handles one `media.uploaded`: once per event, and nothing for a file deleted meanwhile.
pub async fn process(state: &AppState, event: &CloudEvent) -> Result<(), Error> {
    let uploaded: MediaUploaded = event
        .decode()
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    let Some(row) = store::media::get(&state.pool, uploaded.media_id).await? else {
        return Ok(());
    };
    if row.state != "stored" {
        return Ok(());
    }
    let files = &state.config.files;
    let variant = domain::thumbnail_variant(files.thumbnail_px);
    let mut thumbs = Vec::new();
    let (outcome, error) = if !domain::is_image(&row.content_type) {
        ("skipped", None)
    } else if row.size_bytes as u64 > files.max_thumbnail_source_bytes {
        (
            "skipped",
            Some("the image is too large to make a thumbnail of".to_string()),
        )
    } else {
        let load = || async { Ok(state.blobs.read(&row.object_key).await?) };
        let (max, px) = (files.max_image_pixels, files.thumbnail_px);
        let size = row.size_bytes as u64;
        match make(&state.decode_memory, size, load, max, px).await? {
            Ok(made) => {
                let key = domain::thumbnail_key(row.id, &variant);
                let size = made.png.len() as i64;
                state.blobs.put(&key, made.png.into()).await?;
                thumbs.push(ThumbnailRow {
                    media_id: row.id,
                    variant: variant.clone(),
                    object_key: key,
                    content_type: "image/png".into(),
                    width: made.width as i32,
                    height: made.height as i32,
                    size_bytes: size,
                });
                ("processed", None)
            }
            Err(refusal) => {
                tracing::info!(media_id = %row.id, reason = %refusal, "no thumbnail");
                ("refused", Some(refusal.to_string()))
            }
        }
    };
    let mut tx = state.pool.begin().await?;
    if !shared::idempotency::first_time(&mut tx, CONSUMER, event.id).await? {
        return Ok(());
    }
    let kept =
        store::media::set_processed(&mut tx, row.id, outcome, error.as_deref(), &thumbs).await?;
    if kept {
        let event = CloudEvent::new(
            crate::SERVICE,
            MediaProcessed {
                media_id: row.id,
                task_id: uploaded.task_id,
                owner_id: uploaded.owner_id,
                state: outcome.into(),
                thumbnails: thumbs
                    .iter()
                    .map(|t| Thumbnail {
                        variant: t.variant.clone(),
                        width: t.width as u32,
                        height: t.height as u32,
                        content_type: t.content_type.clone(),
                        size_bytes: t.size_bytes,
                    })
                    .collect(),
                error,
            },
        );
        shared::outbox::enqueue(&mut tx, event).await?;
    }
    tx.commit().await?;
    if !kept {
        for t in &thumbs {
            state.blobs.delete(&t.object_key).await?;
        }
    }
    metrics::counter!("taskmesh_media_processed_total", "state" => outcome).increment(1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_pixel(width, height, image::Rgb([200, 10, 10]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(image)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn an_image_is_scaled_to_fit_and_a_bomb_is_refused_before_decoding() {
        let made = thumbnail(&png(800, 400), 1_000_000, 256).unwrap();
        assert_eq!((made.width, made.height), (256, 128));
        assert!(made.png.starts_with(b"\x89PNG"));
        let small = thumbnail(&png(64, 32), 1_000_000, 256).unwrap();
        assert_eq!((small.width, small.height), (64, 32), "never scaled up");
        match thumbnail(&png(2000, 1000), 1_000_000, 256) {
            Err(Refusal::Bomb {
                width: 2000,
                height: 1000,
                ..
            }) => {}
            other => panic!("{:?}", other.map(|m| m.width)),
        }
        assert!(matches!(
            thumbnail(b"\x89PNG\r\n\x1a\nnot really", 1_000_000, 256),
            Err(Refusal::Undecodable(_))
        ));
    }

    #[tokio::test]
    async fn a_thumbnail_reads_its_source_only_once_its_memory_is_reserved() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        use futures::FutureExt;

        let source = bytes::Bytes::from(png(64, 64));
        let memory = DecodeMemory::new(1 << 20);
        let everything = memory.reserve(1 << 20).await.unwrap();
        let loads = AtomicUsize::new(0);
        let load = || {
            loads.fetch_add(1, Ordering::SeqCst);
            let source = source.clone();
            async move { Ok(source) }
        };
        let job = make(&memory, source.len() as u64, load, 1 << 20, 16);
        let mut job = std::pin::pin!(job);
        assert!((&mut job).now_or_never().is_none(), "waits for memory");
        assert_eq!(
            loads.load(Ordering::SeqCst),
            0,
            "read before its memory was free"
        );
        drop(everything);
        let made = job.await.unwrap().unwrap();
        assert_eq!((made.width, made.height), (16, 16));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }
}
