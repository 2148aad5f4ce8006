//! The web dashboard in headless Chromium (`tests/browser/dashboard.mjs`): live updates between
//! two people without a reload, an upload's progress bar, an admin replaying a dead job; and
//! the pages' own answers (embedded files, the Content Security Policy). Needs Debian's
//! chromium and `tests/browser/node_modules` (both installed by `scripts/test`).
//!
//! Screenshots go to a temporary folder; `TASKMESH_SCREENSHOTS=docs/screenshots` writes the
//! ones the README shows.

mod common;

use std::path::PathBuf;

use common::jobs::{job_config, Effects};
use common::{App, PASSWORD, WAIT};
use serde_json::json;
use shared::testkit::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_embedded_and_allows_only_its_own_origin() {
    let app = App::start().await;
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/ui/js/app.js", "text/javascript; charset=utf-8"),
        (
            "/ui/vendor/uPlot.iife.min.js",
            "text/javascript; charset=utf-8",
        ),
        ("/ui/app.css", "text/css; charset=utf-8"),
    ] {
        let answer = reqwest::get(format!("{}{path}", app.api)).await.unwrap();
        assert_eq!(answer.status(), 200, "{path}");
        let headers = answer.headers();
        assert_eq!(headers["content-type"], content_type, "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    let missing = reqwest::get(format!("{}/ui/js/nothing.js", app.api))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let walk = reqwest::get(format!("{}/ui/../Cargo.toml", app.api))
        .await
        .unwrap();
    assert_eq!(walk.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_see_each_others_changes_live_and_an_admin_replays_a_dead_job() {
    let app = App::start_with(job_config).await;
    app.sign_up_verified_as(common::jobs::ADMIN, "Grace").await;
    let admin = app.admin_token().await;
    let _ada = app.sign_up_as("ada@example.com", "Ada").await;
    let bob = app.sign_up_as("bob@example.com", "Bob").await;
    let bob_id = app.user_id(&bob).await;
    // A job of the admin's that dies (its endpoint fails twice, its two attempts are used up)
    // and succeeds when replayed.
    let effects = Effects::start(&app).await;
    let dead_title = "Nightly export";
    let (status, task) = app
        .post(
            "/api/v1/tasks",
            Some(&admin),
            json!({"title": dead_title, "job": {"kind": "http", "pool": "inproc",
                   "payload": effects.job("fail_times=2"), "max_attempts": 2}}),
        )
        .await;
    assert_eq!(status, 201, "{task}");
    app.wait_status(&admin, task["id"].as_str().unwrap(), "dead")
        .await;
    // Bob must be known to task-svc (from user.created) before Ada can assign to him.
    wait_assignable(&app, &bob, &bob_id).await;

    let work = std::env::temp_dir().join(format!("taskmesh-dashboard-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&work).unwrap();
    let shots = screenshot_dir(&work);
    // A photo-sized image (noise compresses badly): large enough for progress to show.
    let file = work.join("site-photo.png");
    std::fs::write(&file, noise_png(900, 900)).unwrap();
    let args = [
        app.api.clone(),
        PASSWORD.to_string(),
        bob_id,
        dead_title.to_string(),
        file.display().to_string(),
        shots.display().to_string(),
    ];
    common::browser::run("dashboard.mjs", args.to_vec(), "ok screenshots written").await;
    std::fs::remove_dir_all(&work).ok();
}

/// The first minute and editing (tests/browser/editing.mjs): signing up from `/` and signing in
/// from `/#/tasks` land on the tasks; one task's form is never saved onto another reached by the
/// address bar, Back or Forward; a stale form's save is refused with 412 (the page sends the
/// ETag it was filled from) and offers reload or merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_from_any_address_and_saving_never_overwrites_another_task_or_edit() {
    let app = App::start().await;
    app.sign_up_as("ada@example.com", "Ada").await;
    let bob = app.sign_up_as("bob@example.com", "Bob").await;
    let bob_id = app.user_id(&bob).await;
    // Bob must be known to task-svc (from user.created) before Ada can assign to him.
    wait_assignable(&app, &bob, &bob_id).await;
    let args = vec![app.api.clone(), PASSWORD.to_string(), bob_id];
    common::browser::run("editing.mjs", args, "ok editing: every step passed").await;
}

/// The task list under load (tests/browser/lists.mjs): a search cleared during a burst of 100
/// new tasks shows the whole list, the burst costs a few list requests and not one per event,
/// "Load more" shows past the first 100 and a live refresh keeps them, and an email typed as
/// assignee is refused with a sentence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_list_stays_right_under_a_burst_and_shows_past_its_first_page() {
    let app = App::start().await;
    app.sign_up_as("ada@example.com", "Ada").await;
    let args = vec![app.api.clone(), PASSWORD.to_string()];
    common::browser::run("lists.mjs", args, "ok lists: every step passed").await;
}

/// People by name (tests/browser/picker.mjs): the person picker finds a channel mate by part of
/// a name and anyone by exact email, chosen with the keyboard; lists, the task page and its
/// history (in words) name people; no page shows a user id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_are_picked_and_shown_by_name_never_by_id() {
    let app = App::start().await;
    app.sign_up_as("ada@example.com", "Ada Lovelace").await;
    let bob = app.sign_up_as("bob@example.com", "Bob Stone").await;
    let zed = app.sign_up_as("zed@example.com", "Zed Ward").await;
    // Names reach task-svc with user.created: each is known once assignable.
    for token in [&bob, &zed] {
        wait_assignable(&app, token, &app.user_id(token).await).await;
    }
    let work = std::env::temp_dir().join(format!("taskmesh-picker-{}", uuid::Uuid::new_v4()));
    let shots = screenshot_dir(&work);
    let args = vec![
        app.api.clone(),
        PASSWORD.to_string(),
        shots.display().to_string(),
    ];
    common::browser::run("picker.mjs", args, "ok picker: every step passed").await;
}

/// Comments, two people side by side (tests/browser/comments.mjs): Ada's comment shows on Bob's
/// open page live, rendered; its `@Bob Stone` raises his unread count live; only Ada edits and
/// deletes it, and both show on Bob's page live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comment_and_its_mention_reach_the_other_person_live() {
    let app = App::start().await;
    let ada = app.sign_up_as("ada@example.com", "Ada Lovelace").await;
    let bob = app.sign_up_as("bob@example.com", "Bob Stone").await;
    let channel = app.shared_channel(&ada, &bob, "Home").await;
    let task = json!({"title": "Fix the roof", "channel_id": channel["id"]});
    let (_, task) = app.post("/api/v1/tasks", Some(&ada), task).await;
    // Bob's name reaches task-svc with user.created: a mention finds him once he is named.
    let bob_id = app.user_id(&bob).await;
    shared::testkit::eventually("Bob named", common::WAIT, || async {
        let path = format!("/api/v1/people?ids={bob_id}");
        let (_, list) = app.get(&path, Some(&ada)).await;
        (list["items"][0]["display_name"] == "Bob Stone").then_some(())
    })
    .await;
    let work = std::env::temp_dir().join(format!("taskmesh-comments-{}", uuid::Uuid::new_v4()));
    let args = vec![
        app.api.clone(),
        PASSWORD.to_string(),
        task["id"].as_str().unwrap().to_string(),
        screenshot_dir(&work).display().to_string(),
    ];
    common::browser::run("comments.mjs", args, "ok comments: every step passed").await;
}

/// The board (tests/browser/board.mjs): a column per status; a card moves by drag and drop or
/// by its Move to menu (the keyboard alternative), a forbidden move is refused with its reason,
/// and a change made elsewhere moves its card live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_moves_cards_by_drag_and_drop_and_by_keyboard() {
    let app = App::start().await;
    app.sign_up_as("ada@example.com", "Ada Lovelace").await;
    let work = std::env::temp_dir().join(format!("taskmesh-board-{}", uuid::Uuid::new_v4()));
    let shots = screenshot_dir(&work).display().to_string();
    let args = vec![app.api.clone(), PASSWORD.to_string(), shots];
    common::browser::run("board.mjs", args, "ok board: every step passed").await;
}

/// Labels (tests/browser/labels.mjs): one added with a colour, ticked on a task's page, shown
/// as a chip in its colour on the list, and the list filtered by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_are_added_put_on_tasks_and_filter_the_list() {
    let app = App::start().await;
    app.sign_up_as("ada@example.com", "Ada Lovelace").await;
    let args = vec![app.api.clone(), PASSWORD.to_string()];
    common::browser::run("labels.mjs", args, "ok labels: every step passed").await;
}

/// A task's page (tests/browser/taskpage.mjs): every field edited (the description shown as
/// Markdown, the rule in words), a subtask with its progress live, a relation read and removed
/// from the other side, the next of a recurring task on completion, Delete confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_page_edits_every_field_links_tasks_and_deletes() {
    let app = App::start().await;
    app.sign_up_as("ada@example.com", "Ada Lovelace").await;
    let work = std::env::temp_dir().join(format!("taskmesh-taskpage-{}", uuid::Uuid::new_v4()));
    let shots = screenshot_dir(&work).display().to_string();
    let args = vec![app.api.clone(), PASSWORD.to_string(), shots];
    common::browser::run("taskpage.mjs", args, "ok taskpage: every step passed").await;
}

/// My account (tests/browser/account.mjs): a reset link asked for from the sign-in page, the
/// mailed link's page setting a new password, and the profile's name, address and password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_and_the_profile_changes() {
    let app = App::start().await;
    app.sign_up_as("ada@example.com", "Ada Lovelace").await;
    let asked = json!({"email": "ada@example.com"});
    assert_eq!(
        app.post("/api/v1/auth/password-reset", None, asked).await.0,
        202
    );
    let notify = app.db(&app.env.config.notify.database).await;
    let link = eventually("the reset mail", WAIT, || async {
        sqlx::query_scalar::<_, String>(
            "SELECT content->>'link' FROM messages WHERE content->>'link' LIKE '%/reset-password?token=%'",
        )
        .fetch_optional(&notify)
        .await
        .unwrap()
    })
    .await;
    // The registration's link went out over a minute ago (a new address may be asked for).
    let users = app.db(&app.env.config.user.database).await;
    sqlx::query("UPDATE email_verifications SET created_at = now() - interval '2 minutes'")
        .execute(&users)
        .await
        .unwrap();
    let args = vec![app.api.clone(), PASSWORD.to_string(), link];
    common::browser::run("account.mjs", args, "ok account: every step passed").await;
}

/// The calendar (tests/browser/calendar.mjs): tasks on their due day, months forward and back,
/// a new dated task shown live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calendar_shows_tasks_on_their_due_day() {
    let app = App::start().await;
    app.sign_up_as("ada@example.com", "Ada Lovelace").await;
    let work = std::env::temp_dir().join(format!("taskmesh-calendar-{}", uuid::Uuid::new_v4()));
    let shots = screenshot_dir(&work).display().to_string();
    let args = vec![app.api.clone(), PASSWORD.to_string(), shots];
    common::browser::run("calendar.mjs", args, "ok calendar: every step passed").await;
}

/// Where notifications go (tests/browser/webhooks.mjs): an SMS number verified with the code
/// texted to it (the script serves the stand-in SMS provider); a webhook added on its page shows
/// its secret once, receives a signed task.assigned (the script serves the receiver) and lists
/// it delivered; turned off from the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_number_and_a_webhook_are_set_up_from_the_dashboard() {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (sms, hook) = (free(), free());
    let app = App::start_with(|c| {
        c.sms.base_url = format!("http://127.0.0.1:{sms}");
        c.sms.account = "AC123".into();
        c.sms.token = Some("sms-token".to_string().into());
        c.sms.from = "+15550000000".into();
        c.webhooks.allow = vec!["127.0.0.1".into()];
    })
    .await;
    let ada = app.sign_up_as("ada@example.com", "Ada Lovelace").await;
    let bob = app.sign_up_as("bob@example.com", "Bob Stone").await;
    wait_assignable(&app, &bob, &app.user_id(&ada).await).await;
    let args = vec![
        app.api.clone(),
        PASSWORD.to_string(),
        sms.to_string(),
        hook.to_string(),
    ];
    common::browser::run("webhooks.mjs", args, "ok webhooks: every step passed").await;
}

/// Sessions (tests/browser/sessions.mjs): a sign-in error does not follow to the sign-up form;
/// every tab shares one session (a new tab is signed in, signing out or in follows, two tabs
/// refresh an expired token once between them); a deactivated person's open page drops to the
/// sign-in page saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tabs_share_one_session_and_an_ended_one_says_why() {
    const ADMIN: &str = "admin@example.com";
    let app = App::start_with(|c| c.auth.bootstrap_admin_email = Some(ADMIN.into())).await;
    let admin = app.sign_up_verified(ADMIN).await;
    app.sign_up_as("ada@example.com", "Ada").await;
    let bob = app.sign_up_as("bob@example.com", "Bob").await;
    let bob_id = app.user_id(&bob).await;
    let args = vec![app.api.clone(), PASSWORD.to_string(), admin, bob_id];
    common::browser::run("sessions.mjs", args, "ok sessions: every step passed").await;
}

/// A task's attachments (tests/browser/attachments.mjs): listed with sizes in KB, the image's
/// thumbnail shown, a download that saves the bytes uploaded, a delete that removes the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_files_show_thumbnails_and_download_and_delete() {
    let app = App::start().await;
    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    let (status, task) = app
        .post("/api/v1/tasks", Some(&ada), json!({"title": "Roof repair"}))
        .await;
    assert_eq!(status, 201, "{task}");
    let work = std::env::temp_dir().join(format!("taskmesh-files-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&work).unwrap();
    let (png, text) = (work.join("roof.png"), work.join("notes.txt"));
    std::fs::write(&png, noise_png(120, 80)).unwrap();
    std::fs::write(&text, "Measure the gutter twice.\n".repeat(60)).unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let args = vec![
        app.api.clone(),
        PASSWORD.to_string(),
        task["id"].as_str().unwrap().to_string(),
        path(&png),
        path(&text),
    ];
    common::browser::run("attachments.mjs", args, "ok attachments: every step passed").await;
    std::fs::remove_dir_all(&work).unwrap();
}

/// Channels (tests/browser/channels.mjs): members by name (a join shows live), a task created in
/// a channel and the channel filter, a new join code and a member removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_run_from_the_dashboard() {
    let app = App::start().await;
    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    let bob = app.sign_up_as("bob@example.com", "Bob").await;
    // Bob's name reaches task-svc with user.created.
    wait_assignable(&app, &ada, &app.user_id(&bob).await).await;
    let args = vec![app.api.clone(), PASSWORD.to_string()];
    common::browser::run("channels.mjs", args, "ok channels: every step passed").await;
}

/// The operator's job console (tests/browser/console.mjs): counts by state; a job found by its
/// payload, run now and seen completing live; a cron template's schedule edited and the
/// template paused after a confirmation; three dead jobs replayed together after a confirmation
/// naming three; a worker's page; a member refused every page of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_finds_runs_and_pauses_jobs_from_the_console() {
    let app = App::start_with(job_config).await;
    let admin = app
        .sign_up_verified_as(common::jobs::ADMIN, "Grace Hopper")
        .await;
    app.sign_up_as("ada@example.com", "Ada Lovelace").await;
    let later = json!({"kind": "echo", "pool": "inproc", "payload": {"customer": "acme-42"},
        "run_at": "2031-01-01T00:00:00Z"});
    app.create_job(&admin, "Acme report", later).await;
    let other = json!({"kind": "echo", "pool": "inproc", "payload": {"customer": "globex"},
        "run_at": "2031-01-01T00:00:00Z"});
    app.create_job(&admin, "Globex report", other).await;
    let nightly = json!({"kind": "echo", "pool": "inproc", "payload": {}, "cron": "0 3 * * *"});
    app.create_job(&admin, "Nightly", nightly).await;
    // Three jobs that die (their endpoint fails once, their one attempt is used up) and
    // succeed when replayed.
    let effects = Effects::start(&app).await;
    for n in 1..=3 {
        let export = json!({"kind": "http", "pool": "inproc", "max_attempts": 1,
            "payload": effects.job("fail_times=1")});
        let task = app.create_job(&admin, &format!("Export {n}"), export).await;
        app.wait_status(&admin, task["id"].as_str().unwrap(), "dead")
            .await;
    }
    let work = std::env::temp_dir().join(format!("taskmesh-console-{}", uuid::Uuid::new_v4()));
    let shots = screenshot_dir(&work).display().to_string();
    let args = vec![
        app.api.clone(),
        common::jobs::ADMIN.to_string(),
        PASSWORD.to_string(),
        shots,
    ];
    common::browser::run("console.mjs", args, "ok console: every step passed").await;
}

/// axe-core on every page at desktop and phone width (tests/browser/a11y.mjs): no serious or
/// critical violation on the sign-in and verification pages and every view an admin reaches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_has_no_serious_accessibility_violation() {
    let app = App::start_with(job_config).await;
    let admin = app
        .sign_up_verified_as(common::jobs::ADMIN, "Grace Hopper")
        .await;
    let (status, task) = app
        .post(
            "/api/v1/tasks",
            Some(&admin),
            json!({"title": "Audit the pages", "description": "Every *page*, each **view**:\n\n1. list\n2. task",
                "recurrence": "FREQ=WEEKLY;BYDAY=MO"}),
        )
        .await;
    assert_eq!(status, 201, "{task}");
    // A subtask and a related task, so that the task page's lists of them are audited too.
    let sub = json!({"title": "Audit the board", "parent_id": task["id"]});
    let (_, sub) = app.post("/api/v1/tasks", Some(&admin), sub).await;
    let relations = format!("/api/v1/tasks/{}/relations", task["id"].as_str().unwrap());
    let related = json!({"relation": "blocks", "task_id": sub["id"]});
    assert_eq!(app.post(&relations, Some(&admin), related).await.0, 201);
    // A comment, so that the task page's comments are audited too.
    let comments = format!("/api/v1/tasks/{}/comments", task["id"].as_str().unwrap());
    let comment = json!({"body": "Check **each** page:\n\n- tasks\n- [board](#/board)"});
    assert_eq!(app.post(&comments, Some(&admin), comment).await.0, 201);
    let step = json!({"id": "only", "job": {"kind": "echo", "pool": "inproc", "payload": {}}});
    let workflow = app
        .create_workflow(&admin, json!({"title": "audit", "steps": [step]}))
        .await;
    // A cron template, so that the cron page's table is audited too.
    let nightly = json!({"kind": "echo", "pool": "inproc", "payload": {}, "cron": "0 3 * * *"});
    app.create_job(&admin, "Nightly audit", nightly).await;
    let args = vec![
        app.api.clone(),
        common::jobs::ADMIN.to_string(),
        PASSWORD.to_string(),
        task["id"].as_str().unwrap().to_string(),
        workflow["id"].as_str().unwrap().to_string(),
    ];
    common::browser::run("a11y.mjs", args, "ok a11y: every page passed").await;
}

/// The page a mailed link opens (tests/browser/verify.mjs): a member's link confirms the
/// address; the bootstrap admin's asks for the account's password and makes it admin; an
/// unconfirmed address shows a banner offering a new link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailed_link_confirms_the_address_in_the_dashboard() {
    const ADMIN: &str = "admin@example.com";
    let app = App::start_with(|c| c.auth.bootstrap_admin_email = Some(ADMIN.into())).await;
    for email in ["ada@example.com", ADMIN, "cy@example.com"] {
        app.sign_up(email).await;
    }
    let token = |link: String| link.split_once("token=").unwrap().1.to_string();
    let ada = token(app.verification_link("ada@example.com").await);
    let admin = token(app.verification_link(ADMIN).await);
    let args = vec![
        app.api.clone(),
        ada,
        admin,
        PASSWORD.into(),
        "cy@example.com".into(),
    ];
    common::browser::run("verify.mjs", args, "ok verify: every step passed").await;
    // What the pages showed, through the API.
    let app = &app;
    let me = |email: &'static str| async move {
        let token = app.log_in(email).await;
        app.get("/api/v1/users/me", Some(&token)).await.1
    };
    let ada = me("ada@example.com").await;
    assert_eq!(
        (ada["email_verified"].as_bool(), ada["role"].as_str()),
        (Some(true), Some("member"))
    );
    let admin = me(ADMIN).await;
    assert_eq!(
        (admin["email_verified"].as_bool(), admin["role"].as_str()),
        (Some(true), Some("admin"))
    );
    assert_eq!(me("cy@example.com").await["email_verified"], false);
}

/// Waits until task-svc knows the user (from `user.created`), so tasks can be assigned to them.
/// Where screenshots go: `$TASKMESH_SCREENSHOTS` (from the repository's root), or `work`.
fn screenshot_dir(work: &std::path::Path) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let shots = match std::env::var("TASKMESH_SCREENSHOTS") {
        Ok(dir) => root.join(dir),
        Err(_) => work.to_path_buf(),
    };
    std::fs::create_dir_all(&shots).unwrap();
    shots
}

async fn wait_assignable(app: &App, token: &str, id: &str) {
    shared::testkit::eventually("the user is assignable", common::WAIT, || async {
        let (status, _) = app
            .post(
                "/api/v1/tasks",
                Some(token),
                json!({"title": "warm-up", "assignee_id": id}),
            )
            .await;
        (status == 201).then_some(())
    })
    .await;
}

fn noise_png(width: u32, height: u32) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    let image = image::RgbImage::from_fn(width, height, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let [a, b, c, _] = state.to_le_bytes();
        image::Rgb([a, b, c])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// The Limits page (tests/browser/limits.mjs): a member's key with a job in flight and others
/// waiting, followed live until it drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_follows_their_limit_key_drain_live() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    for i in 0..3 {
        app.create_job(
            &ada,
            &format!("one at a time {i}"),
            json!({"kind": "sleep", "pool": "inproc", "payload": {"ms": 6000},
                   "limit": {"key": "customer-42", "concurrency": 1}}),
        )
        .await;
    }
    let args = vec![
        app.api.clone(),
        PASSWORD.to_string(),
        "ada@example.com".to_string(),
        "customer-42".to_string(),
    ];
    common::browser::run("limits.mjs", args, "ok limits:").await;
}

/// A workflow's page (tests/browser/workflows.mjs): its graph changes live, Cancel stops it and
/// Retry runs it again to completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflows_graph_changes_live_and_is_cancelled_and_retried_from_its_page() {
    let app = App::start_with(job_config).await;
    let ada = app.sign_up_as("ada@example.com", "Ada").await;
    let job = |kind: &str, payload| json!({"kind": kind, "pool": "inproc", "payload": payload});
    let created = app
        .create_workflow(
            &ada,
            json!({"title": "graph", "steps": [
                {"id": "fetch", "job": job("echo", json!({}))},
                {"id": "slow", "needs": ["fetch"], "job": job("sleep", json!({"ms": 15000}))},
                {"id": "report", "needs": ["slow"], "job": job("echo", json!({}))},
            ]}),
        )
        .await;
    let args = vec![
        app.api.clone(),
        PASSWORD.to_string(),
        "ada@example.com".to_string(),
        created["id"].as_str().unwrap().to_string(),
    ];
    common::browser::run("workflows.mjs", args, "ok workflows: Retry").await;
}

/// The Tokens page (tests/browser/tokens.mjs): a token made, shown once, used by a program,
/// its use shown, revoked and refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_makes_uses_and_revokes_a_token_on_the_tokens_page() {
    let app = App::start().await;
    app.sign_up_as("ada@example.com", "Ada Lovelace").await;
    let args = vec![
        app.api.clone(),
        PASSWORD.to_string(),
        "ada@example.com".into(),
    ];
    common::browser::run("tokens.mjs", args, "ok tokens: every step passed").await;
}
