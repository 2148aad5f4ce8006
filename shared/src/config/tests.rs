//! Loading the configuration from defaults, files and the environment.

use super::*;

#[test]
fn defaults_reach_local_services_on_their_ports() {
    let config = Config::default();
    config.validate().unwrap();
    assert_eq!(config.task.bind.port(), 8082);
    assert_eq!(config.user.database, "taskmesh_users");
    assert_eq!(config.amqp.namespace, "taskmesh");
}

#[test]
fn environment_overrides_nested_values() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("TASKMESH_TASK__BIND", "0.0.0.0:9999");
        jail.set_env("TASKMESH_CONSUMER__MAX_ATTEMPTS", "3");
        let config = Config::load().unwrap();
        assert_eq!(config.task.bind.port(), 9999);
        assert_eq!(config.consumer.max_attempts, 3);
        Ok(())
    });
}

#[test]
fn one_field_of_a_service_section_keeps_the_sections_other_defaults() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("TASKMESH_TASK__URL", "http://task-svc:8082");
        let config = Config::load().unwrap();
        assert_eq!(config.task.url, "http://task-svc:8082");
        assert_eq!(config.task.bind.port(), 8082);
        assert_eq!(config.task.database, "taskmesh_tasks");
        assert_eq!(config.user.database, "taskmesh_users");
        Ok(())
    });
}

#[test]
fn lists_come_from_the_environment() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("TASKMESH_WORKERS__POOLS", "[default, py]");
        let config = Config::load().unwrap();
        assert_eq!(config.workers.pools, ["default", "py"]);
        Ok(())
    });
}

#[test]
fn a_bad_url_names_the_setting() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("TASKMESH_AMQP__URL", "http://nope");
        let err = Config::load().unwrap_err();
        assert!(err.to_string().contains("amqp.url"), "{err}");
        Ok(())
    });
}

#[test]
fn a_misspelt_variable_stops_the_process_naming_it() {
    for (variable, named) in [
        ("TASKMESH_TASK__BIDN", "bidn"),
        ("TASKMESH_INTERNAL_SECRET", "internal_secret"),
        ("TASKMESH_TAKS__BIND", "taks"),
    ] {
        figment::Jail::expect_with(|jail| {
            jail.set_env(variable, "0.0.0.0:9999");
            let err = Config::load().unwrap_err().to_string();
            assert!(err.contains(named), "{variable}: {err}");
            Ok(())
        });
    }
}

#[test]
fn variables_that_are_not_settings_pass() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("TASKMESH_TASK_ID", "0191");
        jail.set_env("TASKMESH_CRASH", "after_report");
        jail.set_env("TASKMESH_CONTRACT_SEED", "1");
        Config::load().unwrap();
        Ok(())
    });
}

#[test]
fn secrets_do_not_print() {
    let config = Config::default();
    let printed = format!("{config:?}");
    assert!(!printed.contains("guest:guest"), "{printed}");
}

#[test]
fn link_keys_are_long_enough_and_links_expire() {
    for setting in [
        "TASKMESH_FILES__LINK_SECRET",
        "TASKMESH_NOTIFICATIONS__LINK_SECRET",
    ] {
        figment::Jail::expect_with(|jail| {
            jail.set_env(setting, "short");
            let err = Config::load().unwrap_err();
            assert!(
                err.0.contains("link_secret must be at least 32 bytes"),
                "{err:?}"
            );
            jail.set_env(setting, "k".repeat(32));
            Config::load().unwrap();
            Ok(())
        });
    }
    figment::Jail::expect_with(|jail| {
        jail.set_env("TASKMESH_NOTIFICATIONS__UNSUBSCRIBE_LINK_DAYS", "0");
        let err = Config::load().unwrap_err();
        assert!(err.0.contains("unsubscribe_link_days"), "{err:?}");
        Ok(())
    });
}

#[test]
fn the_amqp_namespace_is_plain_lowercase() {
    for bad in ["", "Taskmesh", "task.mesh", "a b", "täsk", &"x".repeat(65)] {
        let mut config = Config::default();
        config.amqp.namespace = bad.to_string();
        let refused = config.validate().unwrap_err();
        assert!(refused.0.contains("amqp.namespace"), "{bad:?}: {refused:?}");
    }
    let mut config = Config::default();
    config.amqp.namespace = "test-0f3a_b".into();
    config.validate().unwrap();
}
