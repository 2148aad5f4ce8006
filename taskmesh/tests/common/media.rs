//! Helpers for file tests: uploads (well-formed, and raw multipart bodies for what a well-behaved
//! client cannot send), downloads, what the store holds, and images built for the purpose.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{App, Reply};

/// Creates a task; returns its id.
pub async fn task(app: &App, token: &str, title: &str) -> String {
    let (status, task) = app
        .post("/api/v1/tasks", Some(token), json!({ "title": title }))
        .await;
    assert_eq!(status, 201, "{task}");
    task["id"].as_str().unwrap().to_string()
}

/// Uploads `files` (name, bytes) to `task_id`, one part named `file` each.
pub async fn upload(app: &App, token: &str, task_id: &str, files: &[(&str, Vec<u8>)]) -> Reply {
    let mut form = reqwest::multipart::Form::new();
    for (name, bytes) in files {
        let part = reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string());
        form = form.part("file", part);
    }
    let response = app
        .http
        .post(format!("{}/api/v1/tasks/{task_id}/attachments", app.api))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    Reply::read(response).await
}

/// The boundary of the forms [`held_upload`] sends.
pub const HELD_BOUNDARY: &str = "taskmesh-test-boundary";

/// The bytes still to send of a [`held_upload`].
pub type Rest = futures::channel::mpsc::UnboundedSender<Result<Vec<u8>, std::io::Error>>;

/// An upload of one text file to `task_id`, sent chunked (no `Content-Length`), whose bytes come
/// when the test sends them: its head now, then what the test sends on the returned sender;
/// [`finish_held`] sends the end. The answer is awaited on its own task.
pub fn held_upload(
    app: &App,
    token: &str,
    task_id: &str,
) -> (Rest, tokio::task::JoinHandle<Reply>) {
    let (bytes, body) = futures::channel::mpsc::unbounded::<Result<Vec<u8>, std::io::Error>>();
    let head = format!(
        "--{HELD_BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.txt\"\r\n\
         Content-Type: text/plain\r\n\r\nthe first half, "
    );
    bytes.unbounded_send(Ok(head.into_bytes())).unwrap();
    let request = app
        .http
        .post(format!("{}/api/v1/tasks/{task_id}/attachments", app.api))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={HELD_BOUNDARY}"),
        )
        .body(reqwest::Body::wrap_stream(body));
    let answer = tokio::spawn(async move { Reply::read(request.send().await.unwrap()).await });
    (bytes, answer)
}

/// A [`held_upload`] once media-svc has taken it in: past the edit-right check, holding its
/// slot. Needs `files.max_uploads_per_user = 1`: once the held upload has the only slot, an empty
/// form (400 while the slot is free) gets 429. A probe that holds the slot at the moment the
/// upload arrives makes the upload the refused one: it is then sent again.
pub async fn held_upload_begun(
    app: &App,
    token: &str,
    task_id: &str,
) -> (Rest, tokio::task::JoinHandle<Reply>) {
    let url = format!("{}/api/v1/tasks/{task_id}/attachments", app.api);
    let content_type = format!("multipart/form-data; boundary={HELD_BOUNDARY}");
    let empty = format!("--{HELD_BOUNDARY}--\r\n");
    let (mut bytes, mut held) = held_upload(app, token, task_id);
    let deadline = tokio::time::Instant::now() + super::WAIT;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the held upload never took the only slot"
        );
        if held.is_finished() {
            let refused = held.await.unwrap();
            assert_eq!(refused.status, 429, "{:?}", refused.body);
            (bytes, held) = held_upload(app, token, task_id);
            continue;
        }
        let probe = app
            .http
            .post(&url)
            .bearer_auth(token)
            .header("content-type", &content_type)
            .body(empty.clone())
            .send()
            .await
            .unwrap();
        if probe.status() == 429 {
            return (bytes, held);
        }
        assert_eq!(probe.status(), 400);
    }
}

/// Sends the rest of a [`held_upload`] and its end.
pub fn finish_held(bytes: Rest) {
    let end = format!("then the rest\r\n--{HELD_BOUNDARY}--\r\n");
    bytes.unbounded_send(Ok(end.into_bytes())).unwrap();
}

/// Uploads one file whose part header says `filename="<raw_name>"` byte for byte.
pub async fn upload_raw_name(
    app: &App,
    token: &str,
    task_id: &str,
    raw_name: &[u8],
    bytes: &[u8],
) -> Reply {
    let boundary = "taskmesh-test-boundary";
    let mut body =
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"")
            .into_bytes();
    body.extend_from_slice(raw_name);
    body.extend_from_slice(b"\"\r\nContent-Type: application/octet-stream\r\n\r\n");
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let response = app
        .http
        .post(format!("{}/api/v1/tasks/{task_id}/attachments", app.api))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    Reply::read(response).await
}

/// A download: status, headers and the bytes.
pub struct Download {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
}

impl Download {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// GETs `url` (a path under the gateway, or a whole URL whose path is sent to it) with `token` and extra headers.
pub async fn get(app: &App, url: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Download {
    // A signed link names the configured public URL; this test's gateway is on its own port.
    let path = match url.find("/api/") {
        Some(at) => &url[at..],
        None => url,
    };
    let url = format!("{}{path}", app.api);
    let mut request = app.http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    Download {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        bytes: response.bytes().await.unwrap().to_vec(),
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every file under the local store's folder (objects, thumbnails, half-written parts).
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// Rows in media-svc's catalogue.
pub async fn rows(app: &App) -> i64 {
    let db = app.db(&app.env.config.media.database).await;
    sqlx::query_scalar("SELECT count(*) FROM media_objects")
        .fetch_one(&db)
        .await
        .unwrap()
}

/// A PNG of `width` × `height` pixels.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// The start of a PNG whose header claims `width` × `height` pixels (with valid CRCs), followed
/// by a little compressed data: what a decompression bomb looks like before it is inflated.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
        out
    };
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(chunk(b"IHDR", &ihdr));
    out.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01],
    ));
    out.extend(chunk(b"IEND", &[]));
    out
}

/// A JPEG of `width` × `height` whose EXIF says it must be turned 90° clockwise to be upright
/// (orientation 6), and which names a place in its description (metadata that must not reach
/// the thumbnail).
pub fn jpeg_rotated(width: u32, height: u32, secret: &str) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(width, height, image::Rgb([30, 120, 200]));
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    // TIFF, little-endian: IFD0 with Orientation (0x0112) = 6 and ImageDescription (0x010E).
    let description = format!("{secret}\0");
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
    let text_at = 8 + 2 + 2 * 12 + 4;
    tiff.extend_from_slice(&[0x0E, 0x01, 2, 0]);
    tiff.extend_from_slice(&(description.len() as u32).to_le_bytes());
    tiff.extend_from_slice(&(text_at as u32).to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff.extend_from_slice(description.as_bytes());
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend(app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// The file's metadata once processing has finished.
pub async fn processed(app: &App, token: &str, id: &str) -> Value {
    shared::testkit::eventually("the upload to be processed", super::WAIT, || async {
        let (status, file) = app.get(&format!("/api/v1/media/{id}"), Some(token)).await;
        (status == 200 && file["state"] != "stored").then_some(file)
    })
    .await
}
