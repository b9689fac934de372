"""Push events as GitHub and GitLab send them (their documented shapes, trimmed of nothing that
matters), with the headers each sends, signed the way each signs."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

ZERO = "0" * 40


def github_push(ref: str, before: str, after: str, clone_url: str) -> dict[str, Any]:
    """A GitHub `push` event (docs.github.com, webhook-events-and-payloads#push)."""
    author = {"name": "Octo Cat", "email": "octocat@example.com", "username": "octocat"}
    head = {
        "id": after,
        "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
        "distinct": True,
        "message": "Update app.py",
        "timestamp": "2026-12-01T18:00:00Z",
        "url": f"https://github.com/octocat/app/commit/{after}",
        "author": author,
        "committer": author,
        "added": [],
        "removed": [],
        "modified": ["app.py"],
    }
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "repository": {
            "id": 186853002,
            "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
            "name": "app",
            "full_name": "octocat/app",
            "private": False,
            "owner": {"name": "octocat", "email": "octocat@example.com", "login": "octocat"},
            "html_url": "https://github.com/octocat/app",
            "clone_url": clone_url,
            "default_branch": "main",
            "master_branch": "main",
        },
        "pusher": {"name": "octocat", "email": "octocat@example.com"},
        "sender": {"login": "octocat", "id": 583231, "type": "User"},
        "created": before == ZERO,
        "deleted": after == ZERO,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/octocat/app/compare/{before[:12]}...{after[:12]}",
        "commits": [] if after == ZERO else [head],
        "head_commit": None if after == ZERO else head,
    }


def github_headers(secret: str, body: bytes, event: str = "push") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/a1b2c3d",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-GitHub-Hook-ID": "292430182",
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def github_ping(hook_id: int = 292430182) -> dict[str, Any]:
    return {
        "zen": "Keep it logically awesome.",
        "hook_id": hook_id,
        "hook": {"type": "Repository", "id": hook_id, "events": ["push"], "active": True},
        "repository": {"id": 186853002, "full_name": "octocat/app"},
        "sender": {"login": "octocat", "id": 583231},
    }


def gitlab_push(ref: str, before: str, after: str, clone_url: str) -> dict[str, Any]:
    """A GitLab `Push Hook` (docs.gitlab.com, webhook_events#push-events)."""
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": before,
        "after": after,
        "ref": ref,
        "ref_protected": True,
        "checkout_sha": None if after == ZERO else after,
        "message": None,
        "user_id": 4,
        "user_name": "John Smith",
        "user_username": "jsmith",
        "user_email": "john@example.com",
        "project_id": 15,
        "project": {
            "id": 15,
            "name": "app",
            "description": "",
            "web_url": "https://gitlab.example.com/mike/app",
            "git_ssh_url": "git@gitlab.example.com:mike/app.git",
            "git_http_url": clone_url,
            "namespace": "Mike",
            "visibility_level": 0,
            "path_with_namespace": "mike/app",
            "default_branch": "main",
        },
        "commits": []
        if after == ZERO
        else [
            {
                "id": after,
                "message": "Update app.py\n",
                "title": "Update app.py",
                "timestamp": "2026-12-01T18:00:00+00:00",
                "url": f"https://gitlab.example.com/mike/app/-/commit/{after}",
                "author": {"name": "John Smith", "email": "john@example.com"},
                "added": [],
                "modified": ["app.py"],
                "removed": [],
            }
        ],
        "total_commits_count": 0 if after == ZERO else 1,
        "repository": {
            "name": "app",
            "url": "git@gitlab.example.com:mike/app.git",
            "homepage": "https://gitlab.example.com/mike/app",
            "git_http_url": clone_url,
            "git_ssh_url": "git@gitlab.example.com:mike/app.git",
            "visibility_level": 0,
        },
    }


def gitlab_headers(token: str, event: str = "Push Hook") -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/17.6.0",
        "X-Gitlab-Event": event,
        "X-Gitlab-Instance": "https://gitlab.example.com",
        "X-Gitlab-Webhook-UUID": "16412e5f-4f0e-4b0f-9bb1-c2b2a4a3e2c1",
        "X-Gitlab-Event-UUID": "5b2c3d4e-1f2a-4b3c-8d9e-0a1b2c3d4e5f",
        "X-Gitlab-Token": token,
    }


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()
