//! Mail bodies from minijinja templates (embedded in the binary; `.html` ones are
//! auto-escaped, so a task title cannot inject markup).

use std::sync::OnceLock;

use minijinja::Environment;
use serde::Serialize;

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            (
                "notification.txt",
                include_str!("../../templates/notification.txt"),
            ),
            (
                "notification.html",
                include_str!("../../templates/notification.html"),
            ),
            (
                "verification.txt",
                include_str!("../../templates/verification.txt"),
            ),
            (
                "verification.html",
                include_str!("../../templates/verification.html"),
            ),
            ("digest.txt", include_str!("../../templates/digest.txt")),
            ("digest.html", include_str!("../../templates/digest.html")),
        ] {
            env.add_template(name, source)
                .expect("the embedded templates parse");
        }
        env
    })
}

/// The text and HTML bodies of template `name` (`notification`, `verification` or `digest`).
pub fn render(name: &str, context: impl Serialize) -> Result<(String, String), minijinja::Error> {
    let context = minijinja::Value::from_serialize(&context);
    let text = env()
        .get_template(&format!("{name}.txt"))?
        .render(&context)?;
    let html = env()
        .get_template(&format!("{name}.html"))?
        .render(&context)?;
    Ok((text, html))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let (text, html) = render(
            "notification",
            json!({"to_name": "Bob", "title": "t", "body": "<script>x</script> & co",
                   "link": "http://x/1", "kind_label": "task.assigned", "unsubscribe": "http://x/u"}),
        )
        .unwrap();
        assert!(text.contains("<script>x</script> & co"), "{text}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(text.contains("http://x/u") && html.contains("http://x/u"));
    }
}
