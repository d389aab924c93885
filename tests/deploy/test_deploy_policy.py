"""What a deploy may ask for: hostile URLs, names, refs and entry points are refused with their reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from qactuar.deploy.errors import DeployError
from qactuar.deploy.names import app_path, check_name, name_from_url
from qactuar.deploy.urls import check_entry, check_ref, check_url

HTTPS = {"schemes": ["https", "ssh"], "hosts": []}

# (url, part of the reason)
HOSTILE_URLS = [
    ("ext::sh -c touch% /tmp/pwned", "remote helper"),
    ("ext::sh", "remote helper"),
    ("fd::17/foo", "remote helper"),
    ("https::github.com/owner/repo", "remote helper"),
    ("--upload-pack=touch /tmp/pwned", "starts with '-'"),
    ("-uhttps://github.com/owner/repo", "starts with '-'"),
    ("https://user:secret@github.com/owner/repo.git", "credentials"),
    ("https://ghp_token@github.com/owner/repo.git", "credentials"),
    ("ssh://git:password@github.com/owner/repo.git", "credentials"),
    ("ssh://-oProxyCommand=touch%20pwned/owner/repo", "host"),
    ("https://github.com/owner/repo\n--upload-pack=x", "control characters"),
    ("https://github.com/owner/repo\x00", "control characters"),
    ("https://github.com/own\x1b[31mer/repo", "control characters"),
    ("https://github.com/owner/repo%0a.git", "percent-encoded control"),
    ("https://github.com/owner/repo%0D.git", "percent-encoded control"),
    ("git://github.com/owner/repo.git", "scheme 'git' is not allowed"),
    ("http://github.com/owner/repo.git", "scheme 'http' is not allowed"),
    ("file:///etc/passwd", "scheme 'file' is not allowed"),
    ("/srv/repos/app.git", "not a URL"),
    ("git@github.com:owner/repo.git", "not a URL"),
    ("https://github.com/owner/repo::evil", "'::'"),
    ("https://gïthub.com/owner/repo", "non-ASCII"),
    ("https://github.com/owner/repo?ref=main", "query or fragment"),
    ("https://github.com/owner/repo#main", "query or fragment"),
    ("https://github.com:99999/owner/repo", "does not parse"),
    ("https://-github.com/owner/repo", "host"),
    ("https:///owner/repo", "host"),
    ("https://github.com", "no repository path"),
    ("", "empty"),
    ("https://github.com/" + "a" * 3000, "longer than"),
]


@pytest.mark.parametrize(("url", "reason"), HOSTILE_URLS)
def test_hostile_url_is_refused_with_its_reason(url: str, reason: str) -> None:
    with pytest.raises(DeployError, match=r"refused|empty") as caught:
        check_url(url, **HTTPS)
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/owner/repo.git",
        "https://git.example.com:8443/group/sub/repo",
        "https://[2001:db8::1]/owner/repo.git",
        "ssh://git@github.com/owner/repo.git",
    ],
)
def test_plain_urls_pass(url: str) -> None:
    assert check_url(url, **HTTPS) == url


def test_allowed_hosts_restrict_the_host() -> None:
    check_url("https://GitHub.com/o/r", schemes=["https"], hosts=["github.com"])
    with pytest.raises(DeployError, match="not in DEPLOY_ALLOWED_HOSTS"):
        check_url("https://evil.example/o/r", schemes=["https"], hosts=["github.com"])


def test_file_urls_need_the_file_scheme_and_an_absolute_path() -> None:
    assert check_url("file:///srv/repo.git", schemes=["file"], hosts=[]) == "file:///srv/repo.git"
    with pytest.raises(DeployError, match="file:///absolute/path"):
        check_url("file://server/srv/repo.git", schemes=["file"], hosts=[])


HOSTILE_NAMES = [
    ".",
    "..",
    "...",
    "../etc",
    "a/b",
    "-rf",
    "_hidden",
    "1app",
    "App",
    "app.name",
    "app name",
    "app\n",
    "\uff41pp",  # a fullwidth letter a
    "café",
    "a" * 64,
    "app\x00",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_name_is_refused(name: str) -> None:
    with pytest.raises(DeployError, match="is not allowed: a name is 1-63 characters"):
        check_name(name)


@pytest.mark.parametrize("name", ["a", "blog", "my-app_2", "a" * 63])
def test_good_names_pass(name: str) -> None:
    assert check_name(name) == name


def test_app_path_stays_inside_app_dir(tmp_path: Path) -> None:
    assert app_path(tmp_path, "blog") == tmp_path.resolve() / "blog"
    (tmp_path / "link").symlink_to("/tmp")
    with pytest.raises(DeployError, match="resolves outside"):
        app_path(tmp_path, "link")


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://github.com/owner/Blog.git", "blog"),
        ("https://github.com/owner/my.site/", "my-site"),
        ("file:///srv/repos/api_v2.git", "api_v2"),
    ],
)
def test_name_from_url(url: str, name: str) -> None:
    assert name_from_url(url) == name


def test_name_from_url_that_gives_none() -> None:
    with pytest.raises(DeployError, match="give one with --name"):
        name_from_url("https://github.com/owner/...git")


@pytest.mark.parametrize(
    "ref", ["--upload-pack=x", "-b", "a..b", "main.lock", "refs//heads", "main@{1}", "bad ref", "ü", ""]
)
def test_hostile_ref_is_refused(ref: str) -> None:
    with pytest.raises(DeployError, match="refused"):
        check_ref(ref)


@pytest.mark.parametrize("ref", ["main", "v1.2.3", "feature/x-y", "0123abc"])
def test_plain_refs_pass(ref: str) -> None:
    assert check_ref(ref) == ref


@pytest.mark.parametrize("entry", ["os:system", "pkg.mod:create()"])
def test_entries_pass(entry: str) -> None:
    assert check_entry(entry) == entry


@pytest.mark.parametrize("entry", ["app", "app:", ":app", "app:app; import os", "import:app", "-m:x"])
def test_bad_entries_are_refused(entry: str) -> None:
    with pytest.raises(DeployError, match="expected 'module:attr'"):
        check_entry(entry)
