"""Config: defaults with no file, the TOML file, DPLOYR_* overrides, clear errors."""

from pathlib import Path

import pytest

from dployr.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file(tmp_path):
    config = load_config(write(tmp_path, ""), environ={})
    assert (config.server.host, config.server.port) == ("127.0.0.1", 7870)
    assert config.server.max_body_bytes == 1_048_576
    assert config.auth.registration == "first-user" and config.auth.bcrypt_rounds == 12
    assert config.rate_limit.login_per_15min == 5
    assert config.runtime.build_concurrency == 1 and config.runtime.keep_releases == 5
    assert config.runtime.max_upload_bytes == 209_715_200
    assert config.proxy.backend == "auto" and config.proxy.http_port == 80
    assert config.webhooks.retry_schedule == [10, 30, 120, 600, 1800, 3600, 21600, 43200]
    assert config.runtimes["python"].image == "python:{version}-slim"


def test_file_values(tmp_path):
    config = load_config(
        write(
            tmp_path,
            '[server]\nport = 8000\ndata_dir = "/srv/d"\n[rate_limit]\nenabled = false\n'
            '[runtime]\ndrain_seconds = 2\n[runtimes.python]\nimage = "py:{version}"\n',
        ),
        environ={},
    )
    assert config.server.port == 8000 and config.server.data_dir == "/srv/d"
    assert config.rate_limit.enabled is False
    assert config.runtime.drain_seconds == 2.0
    assert config.runtimes["python"].image == "py:{version}"
    assert config.runtimes["nodejs"].image == "node:{version}-slim"


def test_environment_overrides_file(tmp_path):
    environ = {
        "DPLOYR_SERVER_PORT": "9000",
        "DPLOYR_RATE_LIMIT_ENABLED": "no",
        "DPLOYR_RUNTIME_ALLOW_LOCAL_SOURCES": "1",
        "DPLOYR_RUNTIME_MAX_UPLOAD_BYTES": "1048576",
        "DPLOYR_WEBHOOKS_RETRY_SCHEDULE": "[1, 5, 5]",
        "DPLOYR_RUNTIMES_GO_IMAGE": "go:x",
        "DPLOYR_URL": "http://ignored",  # the CLI's, not the daemon's
        "DPLOYR_SERVER_NOT_A_KEY": "ignored",
    }
    config = load_config(write(tmp_path, "[server]\nport = 8000\n"), environ=environ)
    assert config.server.port == 9000
    assert config.rate_limit.enabled is False
    assert config.runtime.allow_local_sources is True
    assert config.runtime.max_upload_bytes == 1_048_576
    assert config.webhooks.retry_schedule == [1, 5, 5]
    assert config.runtimes["go"].image == "go:x"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[server]\nbogus = 1\n", "server.bogus"),
        ("[nope]\nx = 1\n", "[nope]"),
        ('[server]\nport = "abc"\n', "server.port"),
        ("[server]\nport = 70000\n", "server.port"),
        ("[rate_limit]\nenabled = 1\n", "rate_limit.enabled"),
        ('[auth]\nregistration = "sometimes"\n', "auth.registration"),
        ('[webhooks]\nretry_schedule = [1, "a"]\n', "webhooks.retry_schedule"),
        ('[runtimes.cobol]\nimage = "x"\n', "runtimes.cobol"),
        ('[runtimes.python]\nimg = "x"\n', "runtimes.python.img"),
        ("server = 1\n", "[server]"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_bad_file_names_the_key(tmp_path, text, named):
    with pytest.raises(ConfigError, match=__import__("re").escape(named)):
        load_config(write(tmp_path, text), environ={})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DPLOYR_SERVER_PORT", "abc"),
        ("DPLOYR_RATE_LIMIT_ENABLED", "maybe"),
        ("DPLOYR_WEBHOOKS_RETRY_SCHEDULE", "not json"),
    ],
)
def test_bad_environment_value_names_the_variable(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        load_config(write(tmp_path, ""), environ={name: value})


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml", environ={})


def test_the_config_files_directory_is_known(tmp_path):
    """Local sources must not read it (it may hold secrets): the config remembers its file."""
    config = load_config(write(tmp_path, ""), environ={})
    assert config.config_dir == tmp_path.absolute()
    with pytest.raises(ConfigError, match="config_file"):
        load_config(write(tmp_path, "[config_file]\nx = 1\n"), environ={})


def test_trusted_proxies_and_api_domain(tmp_path):
    config = load_config(
        write(tmp_path, '[server]\ntrusted_proxies = ["10.0.0.0/8", "fd00::/8"]\n'),
        environ={"DPLOYR_PROXY_API_DOMAIN": "API.Example.COM"},
    )
    assert config.server.trusted_proxies == ["10.0.0.0/8", "fd00::/8"]
    assert config.proxy.api_domain == "api.example.com"  # in the routes' normal form
    from_env = load_config(
        write(tmp_path, ""), environ={"DPLOYR_SERVER_TRUSTED_PROXIES": '["192.168.0.0/16"]'}
    )
    assert from_env.server.trusted_proxies == ["192.168.0.0/16"]
    assert load_config(write(tmp_path, ""), environ={}).server.trusted_proxies == []


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"DPLOYR_SERVER_TRUSTED_PROXIES": '["10.0.0.0/8", "10.0.0.300/8"]'}, "10.0.0.300/8"),
        ({"DPLOYR_SERVER_TRUSTED_PROXIES": '["localhost"]'}, "'localhost'"),
        ({"DPLOYR_SERVER_TRUSTED_PROXIES": '"10.0.0.0/8"'}, "server.trusted_proxies"),
        ({"DPLOYR_SERVER_TRUSTED_PROXIES": "[1]"}, "server.trusted_proxies"),
        ({"DPLOYR_PROXY_API_DOMAIN": "evil.com {\n}\n:2019 {"}, "proxy.api_domain"),
        ({"DPLOYR_PROXY_API_DOMAIN": "api.test:8443"}, "'api.test:8443'"),
        ({"DPLOYR_PROXY_API_DOMAIN": "-bad.com"}, "proxy.api_domain"),
        ({"DPLOYR_PROXY_API_DOMAIN": "*.example.com"}, "proxy.api_domain"),
    ],
)
def test_bad_trusted_proxies_or_api_domain_stop_the_start(tmp_path, environ, named):
    with pytest.raises(ConfigError, match=__import__("re").escape(named)) as refused:
        load_config(write(tmp_path, ""), environ=environ)
    key = "server.trusted_proxies" if "TRUSTED" in next(iter(environ)) else "proxy.api_domain"
    assert key in str(refused.value)


@pytest.mark.parametrize(
    "url", ["127.0.0.1:2019", "http://127.0.0.1:99999", "ftp://h:1", "http://:5"]
)
def test_a_bad_caddy_admin_stops_the_start(tmp_path, url):
    with pytest.raises(ConfigError, match=r"proxy\.caddy_admin"):
        load_config(write(tmp_path, ""), environ={"DPLOYR_PROXY_CADDY_ADMIN": url})
