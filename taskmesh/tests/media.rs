//! Files on tasks through the gateway, on the local store: round trips, hostile uploads, signed
//! links, thumbnails, deletion with the task, and who may see what.

mod common;

use common::media::{self, files_in, get, rows, sha256, task, upload, upload_raw_name};
use common::{App, WAIT};
use reqwest::Method;
use serde_json::json;
use shared::testkit::eventually;

const KIB: usize = 1024;

fn text(n: usize) -> Vec<u8> {
    (0..n).map(|i| b"abcdefghij\n"[i % 11]).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_file_round_trips_byte_identical_with_safe_download_headers() {
    let app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let task_id = task(&app, &ada, "Roof").await;
    let bytes = text(KIB);

    let uploaded = upload(&app, &ada, &task_id, &[("notes \"v1\".txt", bytes.clone())]).await;
    assert_eq!(uploaded.status, 201, "{:?}", uploaded.body);
    let file = &uploaded.body["items"][0];
    assert_eq!(file["content_type"], "text/plain");
    assert_eq!(file["size_bytes"], KIB);
    assert_eq!(file["sha256"], sha256(&bytes));
    let id = file["id"].as_str().unwrap();

    let listed = app
        .get(&format!("/api/v1/tasks/{task_id}/attachments"), Some(&ada))
        .await;
    assert_eq!(listed.0, 200);
    assert_eq!(listed.1["items"][0]["id"], id);

    let content = format!("/api/v1/media/{id}/content");
    let got = get(&app, &content, Some(&ada), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(sha256(&got.bytes), sha256(&bytes));
    assert_eq!(got.header("content-type"), "text/plain");
    assert_eq!(got.header("x-content-type-options"), "nosniff");
    assert_eq!(
        got.header("content-disposition"),
        "attachment; filename=\"notes _v1_.txt\"; filename*=UTF-8''notes%20%22v1%22.txt"
    );
    let etag = format!("\"{}\"", sha256(&bytes));
    assert_eq!(got.header("etag"), etag);
    assert_eq!(got.header("accept-ranges"), "bytes");

    let part = get(&app, &content, Some(&ada), &[("range", "bytes=100-199")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.bytes, bytes[100..200]);
    assert_eq!(part.header("content-range"), "bytes 100-199/1024");
    let tail = get(&app, &content, Some(&ada), &[("range", "bytes=-24")]).await;
    assert_eq!((tail.status, &tail.bytes[..]), (206, &bytes[1000..]));
    let past = get(&app, &content, Some(&ada), &[("range", "bytes=5000-")]).await;
    assert_eq!(past.status, 416);
    assert_eq!(past.header("content-range"), "bytes */1024");
    let cached = get(&app, &content, Some(&ada), &[("if-none-match", &etag)]).await;
    assert_eq!(cached.status, 304);

    // Not an image: processed without a thumbnail, and `media.processed` published.
    let done = media::processed(&app, &ada, id).await;
    assert_eq!(done["state"], "skipped");
    assert_eq!(done["thumbnails"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_uploads_are_refused_with_a_problem_and_nothing_is_stored() {
    const LIMIT: u64 = 256 * 1024;
    let app = App::start_with(|c| {
        c.files.max_file_bytes = LIMIT;
        c.files.max_image_pixels = 10_000_000;
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    let task_id = task(&app, &ada, "Inbox").await;
    let dir = std::path::PathBuf::from(&app.env.config.files.dir);
    let mut polyglot = media::png(8, 8);
    polyglot.extend_from_slice(b"<script>fetch('/api/v1/users/me')</script>");
    let svg = b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>".to_vec();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("logo.svg.png", svg.clone(), 422, "invalid_file_name"),
        ("logo.png", svg, 415, "active_content_refused"),
        (
            "page.txt",
            b"<!DOCTYPE html><html><body>hi</body></html>".to_vec(),
            415,
            "active_content_refused",
        ),
        ("cat.png", polyglot, 422, "suspicious_content"),
        (
            "notes.txt",
            b"plain words, then <script>alert(1)</script>".to_vec(),
            422,
            "suspicious_content",
        ),
        ("photo.jpg.php", media::png(4, 4), 422, "invalid_file_name"),
        (
            "../../etc/passwd.png",
            media::png(4, 4),
            422,
            "invalid_file_name",
        ),
        (
            "invoice\u{202E}gpj.exe",
            media::png(4, 4),
            422,
            "invalid_file_name",
        ),
        (
            "report.png",
            b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n".to_vec(),
            422,
            "file_type_mismatch",
        ),
        (
            "tool.bin",
            b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0".to_vec(),
            415,
            "file_type_not_allowed",
        ),
        ("empty.txt", Vec::new(), 422, "empty_file"),
        (
            "bomb.png",
            media::png_claiming(100_000, 100_000),
            422,
            "image_too_large",
        ),
        ("big.txt", text(LIMIT as usize + 1), 413, "file_too_large"),
    ];
    for (name, bytes, status, code) in cases {
        let refused = upload(&app, &ada, &task_id, &[(name, bytes)]).await;
        assert_eq!(
            (refused.status, refused.code()),
            (status, code),
            "{name}: {:?}",
            refused.body
        );
        assert_eq!(
            refused.headers["content-type"], "application/problem+json",
            "{name}"
        );
        assert!(
            refused.text("detail").contains("file 1"),
            "{name}: {:?}",
            refused.body
        );
        assert_eq!(
            files_in(&dir),
            Vec::<std::path::PathBuf>::new(),
            "{name} left a file"
        );
        assert_eq!(rows(&app).await, 0, "{name} left a row");
    }
    // Names a well-behaved client cannot send: a NUL (the part header itself is malformed)
    // and a backslash.
    let nul = upload_raw_name(&app, &ada, &task_id, b"a\0b.png", &media::png(4, 4)).await;
    assert_eq!(
        (nul.status, nul.code()),
        (400, "invalid_upload"),
        "{:?}",
        nul.body
    );
    let backslash = upload_raw_name(&app, &ada, &task_id, b"..\\x.png", &media::png(4, 4)).await;
    assert_eq!(
        (backslash.status, backslash.code()),
        (422, "invalid_file_name")
    );
    assert!(
        backslash.text("detail").contains("path separators"),
        "{:?}",
        backslash.body
    );
    assert_eq!(files_in(&dir), Vec::<std::path::PathBuf>::new());
    // The limit itself is fine; two files of which the second is refused store neither.
    let exact = upload(&app, &ada, &task_id, &[("exact.txt", text(LIMIT as usize))]).await;
    assert_eq!(exact.status, 201, "{:?}", exact.body);
    let mixed = upload(
        &app,
        &ada,
        &task_id,
        &[("ok.txt", text(10)), ("bad.html", text(10))],
    )
    .await;
    assert_eq!((mixed.status, mixed.code()), (422, "invalid_file_name"));
    assert!(mixed.text("detail").contains("file 2"));
    assert_eq!(rows(&app).await, 1);
    assert_eq!(files_in(&dir).len(), 1);
    // Not multipart at all, and a part that is not a file.
    let (status, body) = app
        .post(
            &format!("/api/v1/tasks/{task_id}/attachments"),
            Some(&ada),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let form = reqwest::multipart::Form::new().text("note", "hello");
    let response = app
        .http
        .post(format!("{}/api/v1/tasks/{task_id}/attachments", app.api))
        .bearer_auth(&ada)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_counts_every_file_of_a_person() {
    let app = App::start_with(|c| c.files.user_quota_bytes = 10 * KIB as u64).await;
    let ada = app.sign_up("ada@example.com").await;
    let task_id = task(&app, &ada, "Inbox").await;
    let first = upload(&app, &ada, &task_id, &[("a.txt", text(6 * KIB))]).await;
    assert_eq!(first.status, 201);
    let second = upload(&app, &ada, &task_id, &[("b.txt", text(6 * KIB))]).await;
    assert_eq!((second.status, second.code()), (413, "quota_exceeded"));
    let fits = upload(&app, &ada, &task_id, &[("c.txt", text(4 * KIB))]).await;
    assert_eq!(fits.status, 201);
    assert_eq!(rows(&app).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_link_downloads_without_a_token_until_it_expires_or_is_changed() {
    let app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let task_id = task(&app, &ada, "Roof").await;
    let bytes = text(3 * KIB);
    let uploaded = upload(&app, &ada, &task_id, &[("plan.txt", bytes.clone())]).await;
    let id = uploaded.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (status, link) = app
        .get(&format!("/api/v1/media/{id}/link"), Some(&ada))
        .await;
    assert_eq!(status, 200, "{link}");
    let url = link["url"].as_str().unwrap().to_string();
    let until: chrono::DateTime<chrono::Utc> =
        link["expires_at"].as_str().unwrap().parse().unwrap();
    let ttl = until - chrono::Utc::now();
    assert!(ttl <= chrono::Duration::minutes(15), "{ttl}");
    let got = get(&app, &url, None, &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.bytes, bytes);

    // Any byte of the id, the expiry or the signature changed: 403.
    let id_at = url.find(&id).unwrap();
    let expires_at = url.find("expires=").unwrap() + "expires=".len();
    let signature_at = url.find("signature=").unwrap() + "signature=".len();
    let expires_end = url[expires_at..].find('&').unwrap() + expires_at;
    let positions = (id_at..id_at + id.len())
        .chain(expires_at..expires_end)
        .chain(signature_at..url.len());
    let mut changed = 0;
    for at in positions {
        let original = url.as_bytes()[at];
        if original == b'-' {
            continue;
        }
        let mut forged = url.clone().into_bytes();
        forged[at] = if original == b'1' { b'2' } else { b'1' };
        let forged = String::from_utf8(forged).unwrap();
        let answer = get(&app, &forged, None, &[]).await;
        assert_eq!(
            answer.status,
            403,
            "{forged}: {}",
            String::from_utf8_lossy(&answer.bytes)
        );
        changed += 1;
    }
    assert!(changed > 70, "only {changed} bytes were changed");

    // A link for a second; once that second has passed it is refused as expired.
    let (_, short) = app
        .get(&format!("/api/v1/media/{id}/link?ttl_secs=1"), Some(&ada))
        .await;
    let short = short["url"].as_str().unwrap().to_string();
    let expired = eventually("the link to expire", WAIT, || async {
        let answer = get(&app, &short, None, &[]).await;
        (answer.status != 200).then_some(answer)
    })
    .await;
    assert_eq!(expired.status, 403);
    let problem: serde_json::Value = serde_json::from_slice(&expired.bytes).unwrap();
    assert_eq!(problem["code"], "link_expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_gets_an_upright_thumbnail_without_its_metadata() {
    let app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let task_id = task(&app, &ada, "Photos").await;
    let photo = media::jpeg_rotated(600, 300, "GPS 52.5163N 13.3777E");
    let uploaded = upload(&app, &ada, &task_id, &[("roof.jpg", photo)]).await;
    assert_eq!(uploaded.status, 201, "{:?}", uploaded.body);
    let id = uploaded.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let done = media::processed(&app, &ada, &id).await;
    assert_eq!(done["state"], "processed", "{done}");
    let thumb = &done["thumbnails"][0];
    assert_eq!(thumb["variant"], "thumb-256");
    // 600 × 300 turned upright is 300 × 600: fitted into 256 × 256, 128 × 256.
    assert_eq!(
        (thumb["width"].as_i64(), thumb["height"].as_i64()),
        (Some(128), Some(256))
    );
    let got = get(
        &app,
        thumb["content_url"].as_str().unwrap(),
        Some(&ada),
        &[],
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), "image/png");
    let decoded = image::load_from_memory(&got.bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (128, 256));
    let text = String::from_utf8_lossy(&got.bytes);
    assert!(
        !text.contains("GPS") && !text.contains("Exif"),
        "metadata reached the thumbnail"
    );

    // `media.processed` was published (the outbox row confirmed by the broker).
    let db = app.db(&app.env.config.media.database).await;
    eventually("media.processed to be published", WAIT, || async {
        let published: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox_messages WHERE routing_key = 'media.processed'
               AND published_at IS NOT NULL AND payload->'data'->>'media_id' = $1
               AND payload->'data'->>'state' = 'processed'",
        )
        .bind(&id)
        .fetch_one(&db)
        .await
        .unwrap();
        (published == 1).then_some(())
    })
    .await;
    // A signed link to the thumbnail works too.
    let (status, link) = app
        .get(
            &format!("/api/v1/media/{id}/link?variant=thumb-256"),
            Some(&ada),
        )
        .await;
    assert_eq!(status, 200);
    let via_link = get(&app, link["url"].as_str().unwrap(), None, &[]).await;
    assert_eq!(via_link.bytes, got.bytes);
}

/// A person has at most `files.max_uploads_per_user` uploads in progress: while one is still
/// sending its bytes, another is refused with 429 before any of its bytes is read; once it is
/// done, the next one is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_has_at_most_the_configured_uploads_in_progress() {
    let app = App::start_with(|c| c.files.max_uploads_per_user = 1).await;
    let ada = app.sign_up("ada@example.com").await;
    let task_id = task(&app, &ada, "Uploads").await;
    // An upload whose bytes come when the test sends them: its head now, the rest later.
    let (bytes, held) = media::held_upload_begun(&app, &ada, &task_id).await;
    let refused = upload(&app, &ada, &task_id, &[("other.txt", b"other".to_vec())]).await;
    assert_eq!((refused.status, refused.code()), (429, "too_many_uploads"));
    // Another person is not held back.
    let bob = app.sign_up("bob@example.com").await;
    let bobs_task = task(&app, &bob, "Bob's").await;
    let bobs = upload(&app, &bob, &bobs_task, &[("b.txt", b"bob".to_vec())]).await;
    assert_eq!(bobs.status, 201, "{:?}", bobs.body);

    media::finish_held(bytes);
    let done = held.await.unwrap();
    assert_eq!(done.status, 201, "{:?}", done.body);
    let next = upload(&app, &ada, &task_id, &[("other.txt", b"other".to_vec())]).await;
    assert_eq!(next.status, 201, "{:?}", next.body);
    let (status, list) = app
        .get(&format!("/api/v1/tasks/{task_id}/attachments"), Some(&ada))
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list}");
}

/// An upload sent without a length (chunked) holds all that is left of its owner's quota while
/// it runs (issue 26, finding 6): their other uploads are refused before their bytes are
/// stored, and once it ends what it did not use is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_without_a_length_holds_the_rest_of_the_quota_while_it_runs() {
    let app = App::start_with(|c| c.files.user_quota_bytes = 10 * KIB as u64).await;
    let ada = app.sign_up("ada@example.com").await;
    let task_id = task(&app, &ada, "Quota").await;
    let (bytes, held) = media::held_upload(&app, &ada, &task_id);
    // One-byte uploads pass until the held one has taken its hold, then are refused for the
    // quota, though a single byte of the 10 KiB is in use.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut passed = 0;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{passed} one-byte uploads passed while the chunked upload ran; none was refused"
        );
        assert!(
            !held.is_finished(),
            "the chunked upload ended before its last byte"
        );
        let probe = upload(&app, &ada, &task_id, &[("one.txt", b"1".to_vec())]).await;
        if probe.status == 413 {
            assert_eq!(probe.code(), "quota_exceeded", "{:?}", probe.body);
            break;
        }
        assert_eq!(probe.status, 201, "{:?}", probe.body);
        passed += 1;
    }
    media::finish_held(bytes);
    let done = held.await.unwrap();
    assert_eq!(done.status, 201, "{:?}", done.body);
    let after = upload(&app, &ada, &task_id, &[("two.txt", b"22".to_vec())]).await;
    assert_eq!(after.status, 201, "{:?}", after.body);
}

/// Thumbnails decode within `files.thumbnail_memory_bytes`: an image whose decoding takes more
/// than all of it (read from its header) is refused without being decoded, naming the setting;
/// a small one under the same budget gets its thumbnail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_needs_more_decoding_memory_than_the_budget_is_refused() {
    let app = App::start_with(|c| c.files.thumbnail_memory_bytes = 1024 * 1024).await;
    let ada = app.sign_up("ada@example.com").await;
    let task_id = task(&app, &ada, "Photos").await;
    // 1,000 × 1,000 RGB: 3 MB decoded, over 6 MB with the upright copy and the source.
    let uploaded = upload(
        &app,
        &ada,
        &task_id,
        &[
            ("large.png", media::png(1000, 1000)),
            ("small.png", media::png(64, 64)),
        ],
    )
    .await;
    assert_eq!(uploaded.status, 201, "{:?}", uploaded.body);
    let id = |i: usize| {
        uploaded.body["items"][i]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };

    let large = media::processed(&app, &ada, &id(0)).await;
    assert_eq!(large["state"], "refused", "{large}");
    let error = large["processing_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("files.thumbnail_memory_bytes") && error.contains("more than the 1 MiB"),
        "{error}"
    );
    assert_eq!(large["thumbnails"], json!([]));
    let small = media::processed(&app, &ada, &id(1)).await;
    assert_eq!(small["state"], "processed", "{small}");
    assert_eq!(small["thumbnails"][0]["width"], 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_task_removes_its_files_and_their_objects() {
    let app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let doomed = task(&app, &ada, "Doomed").await;
    let kept = task(&app, &ada, "Kept").await;
    let dir = std::path::PathBuf::from(&app.env.config.files.dir);
    upload(
        &app,
        &ada,
        &doomed,
        &[("a.png", media::png(40, 40)), ("b.txt", text(100))],
    )
    .await;
    let survivor = upload(&app, &ada, &kept, &[("c.txt", text(100))]).await;
    let survivor = survivor.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Wait for the image's thumbnail, so there is one more object to remove.
    eventually("three objects and a thumbnail", WAIT, || async {
        (files_in(&dir).len() == 4).then_some(())
    })
    .await;

    let deleted = app
        .send(
            Method::DELETE,
            &format!("/api/v1/tasks/{doomed}"),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204);
    eventually("the deleted task's files to go", WAIT, || async {
        (rows(&app).await == 1 && files_in(&dir).len() == 1).then_some(())
    })
    .await;
    let (status, _) = app
        .get(&format!("/api/v1/media/{survivor}"), Some(&ada))
        .await;
    assert_eq!(status, 200);
    // A late upload to the deleted task is refused.
    let late = upload(&app, &ada, &doomed, &[("late.txt", text(10))]).await;
    assert_eq!(late.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_gets_404_on_every_media_route_and_a_channel_member_may_download() {
    let app = App::start().await;
    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    let eve = app.sign_up_as("eve@example.com", "Eve").await;
    let bob = app.sign_up_as("bob@example.com", "Bob").await;
    let private = task(&app, &ada, "Private").await;
    let uploaded = upload(&app, &ada, &private, &[("secret.txt", text(64))]).await;
    let id = uploaded.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let attachments = format!("/api/v1/tasks/{private}/attachments");
    for (method, path) in [
        (Method::GET, attachments.clone()),
        (Method::GET, format!("/api/v1/media/{id}")),
        (Method::GET, format!("/api/v1/media/{id}/content")),
        (Method::GET, format!("/api/v1/media/{id}/link")),
        (Method::DELETE, format!("/api/v1/media/{id}")),
    ] {
        let answer = app.send(method.clone(), &path, Some(&eve), None).await;
        assert_eq!(answer.status, 404, "{method} {path}: {:?}", answer.body);
    }
    let sneaky = upload(&app, &eve, &private, &[("x.txt", text(8))]).await;
    assert_eq!(sneaky.status, 404);
    let (_, mine) = app.get("/api/v1/media", Some(&eve)).await;
    assert_eq!(mine["items"], json!([]));
    assert_eq!(rows(&app).await, 1);

    // A channel task: Bob joins the channel and may download, not upload or delete.
    let (_, channel) = app
        .post("/api/v1/channels", Some(&ada), json!({"name": "Crew"}))
        .await;
    let (status, _) = app
        .post(
            "/api/v1/channels/join",
            Some(&bob),
            json!({"code": channel["join_code"]}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, shared_task) = app
        .post(
            "/api/v1/tasks",
            Some(&ada),
            json!({"title": "Shared", "channel_id": channel["id"]}),
        )
        .await;
    let shared_id = shared_task["id"].as_str().unwrap();
    let bytes = text(500);
    let uploaded = upload(&app, &ada, shared_id, &[("plan.txt", bytes.clone())]).await;
    let shared_file = uploaded.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let got = get(
        &app,
        &format!("/api/v1/media/{shared_file}/content"),
        Some(&bob),
        &[],
    )
    .await;
    assert_eq!((got.status, got.bytes), (200, bytes));
    let refused = upload(&app, &bob, shared_id, &[("mine.txt", text(8))]).await;
    assert_eq!((refused.status, refused.code()), (403, "forbidden"));
    let delete = app
        .send(
            Method::DELETE,
            &format!("/api/v1/media/{shared_file}"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(delete.status, 403);
    // Eve, not in the channel, still sees nothing of it.
    let answer = get(
        &app,
        &format!("/api/v1/media/{shared_file}/content"),
        Some(&eve),
        &[],
    )
    .await;
    assert_eq!(answer.status, 404);
    // Ada deletes her file: gone for everyone.
    let delete = app
        .send(
            Method::DELETE,
            &format!("/api/v1/media/{shared_file}"),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(delete.status, 204);
    let gone = get(
        &app,
        &format!("/api/v1/media/{shared_file}/content"),
        Some(&bob),
        &[],
    )
    .await;
    assert_eq!(gone.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_task_svc_down_media_routes_answer_503_naming_it_and_recover() {
    let mut app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let task_id = task(&app, &ada, "Roof").await;
    let path = format!("/api/v1/tasks/{task_id}/attachments");
    let stack = app.stack.as_mut().unwrap();
    stack.stop_service("task-svc").await.unwrap();
    let (status, body) = app.get(&path, Some(&ada)).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("task-svc"),
        "{body}"
    );
    let refused = upload(&app, &ada, &task_id, &[("a.txt", text(10))]).await;
    assert_eq!(refused.status, 503);
    app.stack
        .as_mut()
        .unwrap()
        .start_service("task-svc")
        .await
        .unwrap();
    eventually("media routes to recover", WAIT, || async {
        (app.get(&path, Some(&ada)).await.0 == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_one_byte_past_the_limit_leaves_no_part_behind() {
    // Past one part (5 MiB), so the store write is a multipart upload that must be aborted.
    const LIMIT: usize = 11 * 1024 * 1024;
    let app = App::start_with(|c| {
        c.files.max_file_bytes = LIMIT as u64;
        c.files.part_bytes = 5 * 1024 * 1024;
    })
    .await;
    let ada = app.sign_up("ada@example.com").await;
    let task_id = task(&app, &ada, "Big").await;
    let dir = std::path::PathBuf::from(&app.env.config.files.dir);
    let refused = upload(&app, &ada, &task_id, &[("big.txt", text(LIMIT + 1))]).await;
    assert_eq!((refused.status, refused.code()), (413, "file_too_large"));
    assert_eq!(
        files_in(&dir),
        Vec::<std::path::PathBuf>::new(),
        "a part was left"
    );
    assert_eq!(rows(&app).await, 0);
    let exact = upload(&app, &ada, &task_id, &[("big.txt", text(LIMIT))]).await;
    assert_eq!(exact.status, 201, "{:?}", exact.body);
    assert_eq!(files_in(&dir).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_part_headers_are_refused_before_they_fill_memory() {
    let app = App::start().await;
    let ada = app.sign_up("ada@example.com").await;
    let task_id = task(&app, &ada, "Inbox").await;
    let mut body =
        b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nX-Pad: "
            .to_vec();
    body.extend(std::iter::repeat_n(b'a', 6 * 1024 * 1024));
    let response = app
        .http
        .post(format!("{}/api/v1/tasks/{task_id}/attachments", app.api))
        .bearer_auth(&ada)
        .header("content-type", "multipart/form-data; boundary=b")
        .body(body)
        .send()
        .await
        .unwrap();
    let reply = common::Reply::read(response).await;
    assert_eq!(
        (reply.status, reply.code()),
        (400, "invalid_upload"),
        "{:?}",
        reply.body
    );
    assert_eq!(rows(&app).await, 0);
}

/// An upload's edit right is asked again when its bytes are in (issue 26, finding 9): an admin
/// demoted and an owner deactivated while sending store nothing, and nothing of theirs is left in
/// the store; the same upload finished by someone who kept the right is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_edit_right_ends_while_sending_stores_nothing() {
    const ADMIN: &str = "admin@example.com";
    let app = App::start_with(|c| {
        c.auth.bootstrap_admin_email = Some(ADMIN.into());
        c.files.max_uploads_per_user = 1;
    })
    .await;
    let admin = app.sign_up_verified(ADMIN).await;
    let ada = app.sign_up("ada@example.com").await;
    let eve = app.sign_up("eve@example.com").await;
    let (ada_id, eve_id) = (app.user_id(&ada).await, app.user_id(&eve).await);
    let promoted = app
        .send(
            Method::PATCH,
            &format!("/api/v1/users/{eve_id}"),
            Some(&admin),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(promoted.status, 200, "{:?}", promoted.body);
    // task-svc's read model lowers a role it has heard of, so Eve uploads as an admin once it
    // has heard of her promotion.
    let tasks_db = app.db(&app.env.config.task.database).await;
    let heard = |id: &str| {
        let (db, id) = (tasks_db.clone(), uuid::Uuid::parse_str(id).unwrap());
        async move {
            sqlx::query_as::<_, (bool, Option<String>)>(
                "SELECT active, role FROM users WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&db)
            .await
            .unwrap()
        }
    };
    eventually("task-svc to hear of Eve's promotion", WAIT, || async {
        (heard(&eve_id).await == Some((true, Some("admin".into())))).then_some(())
    })
    .await;
    let eve = app.log_in("eve@example.com").await;
    let task_id = task(&app, &ada, "Plans").await;
    let kept_id = task(&app, &admin, "Kept").await;
    let dir = std::path::PathBuf::from(&app.env.config.files.dir);

    // Eve (an admin, so she may edit Ada's task) and Ada start; the admin's own upload too.
    // Each has passed the edit-right check and holds its one slot.
    let (eves_bytes, eves) = media::held_upload_begun(&app, &eve, &task_id).await;
    let (adas_bytes, adas) = media::held_upload_begun(&app, &ada, &task_id).await;
    let (admins_bytes, admins) = media::held_upload_begun(&app, &admin, &kept_id).await;
    let before = rows(&app).await;

    for (id, change) in [
        (&eve_id, json!({"role": "member"})),
        (&ada_id, json!({"active": false})),
    ] {
        let reply = app
            .send(
                Method::PATCH,
                &format!("/api/v1/users/{id}"),
                Some(&admin),
                Some(change),
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    eventually("task-svc to hear of both changes", WAIT, || async {
        let member = Some("member".to_string());
        let both = (heard(&ada_id).await, heard(&eve_id).await);
        (both == (Some((false, member.clone())), Some((true, member)))).then_some(())
    })
    .await;

    for bytes in [eves_bytes, adas_bytes, admins_bytes] {
        media::finish_held(bytes);
    }
    let (eves, adas, admins) = (
        eves.await.unwrap(),
        adas.await.unwrap(),
        admins.await.unwrap(),
    );
    // Eve as a member may not see Ada's task; Ada deactivated may see nothing.
    assert_eq!(
        (eves.status, eves.code()),
        (404, "not_found"),
        "{:?}",
        eves.body
    );
    assert_eq!(
        (adas.status, adas.code()),
        (404, "not_found"),
        "{:?}",
        adas.body
    );
    assert_eq!(admins.status, 201, "{:?}", admins.body);
    assert_eq!(
        rows(&app).await,
        before + 1,
        "only the admin's upload is recorded"
    );
    let (status, list) = app
        .get(
            &format!("/api/v1/tasks/{task_id}/attachments"),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|file| file["filename"].as_str())
        .collect();
    assert!(!names.contains(&"slow.txt"), "{list}");
    eventually(
        "the refused uploads' bytes to leave the store",
        WAIT,
        || async { (files_in(&dir).len() as i64 == rows(&app).await).then_some(()) },
    )
    .await;
}
