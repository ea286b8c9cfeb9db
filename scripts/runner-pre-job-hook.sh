#!/usr/bin/env bash
# ci-checks pre-job hook for self-hosted (GPU) runners: refuse any job that could run code from a fork.
#
# Install on the runner machine (not in the repository: a fork can edit the repository, not the runner):
#   sudo install -m 0755 runner-pre-job-hook.sh /opt/actions-runner-hooks/pre-job.sh
#   echo 'ACTIONS_RUNNER_HOOK_JOB_STARTED=/opt/actions-runner-hooks/pre-job.sh' >> /path/to/actions-runner/.env
# and restart the runner service. The runner runs this script before every job, with the job's GITHUB_* variables;
# a non-zero exit fails the job before any of its steps (checkout included) runs.
#
# Policy (fail closed: anything it cannot read, or any event it has no rule for, is refused):
#   - events other than CI_CHECKS_ALLOWED_EVENTS (default: push schedule workflow_dispatch pull_request) are
#     refused; pull_request_target and issue_comment are refused even when listed there;
#   - pull_request is refused unless its head branch lives in this same repository: the same name and, when the
#     payload has them, the same repository id as the base. (A repository that is itself a fork has `fork: true`
#     on its own branches too, so that flag decides nothing.)
#   - push is refused unless it is to the repository's default branch (CI_CHECKS_ALLOW_ANY_BRANCH=1 lifts that);
#     merge_group only for the default branch's merge queue; workflow_run only when triggered from this repository;
#   - schedule and workflow_dispatch are allowed (only people with write access can start them);
#   - any other event is refused: the hook has no rule to check it by;
#   - when CI_CHECKS_ALLOWED_REPOSITORIES is set (space-separated OWNER/NAME), other repositories are refused.
# Set the CI_CHECKS_* variables in the runner's .env file next to ACTIONS_RUNNER_HOOK_JOB_STARTED.
# Needs bash and python3 (to read the event JSON). Exit codes: 0 allowed, 1 refused.
set -euo pipefail

refuse() {
  echo "ci-checks pre-job hook: refused: $*" >&2
  echo "::error title=Refused by the runner's pre-job hook::$*"
  exit 1
}

command -v python3 > /dev/null 2>&1 || refuse "python3 is not installed on this runner; the hook cannot read the event"
event_name="${GITHUB_EVENT_NAME:-}"
event_path="${GITHUB_EVENT_PATH:-}"
repository="${GITHUB_REPOSITORY:-}"
[[ -n "${event_name}" && -n "${repository}" ]] || refuse "GITHUB_EVENT_NAME or GITHUB_REPOSITORY is not set"
[[ -n "${event_path}" && -r "${event_path}" ]] || refuse "the event payload (GITHUB_EVENT_PATH) cannot be read"

allowed_events="${CI_CHECKS_ALLOWED_EVENTS:-push schedule workflow_dispatch pull_request}"
case " ${allowed_events} " in
  *" ${event_name} "*) ;;
  *) refuse "event '${event_name}' is not allowed on this runner (allowed: ${allowed_events})" ;;
esac

if [[ -n "${CI_CHECKS_ALLOWED_REPOSITORIES:-}" ]]; then
  case " ${CI_CHECKS_ALLOWED_REPOSITORIES} " in
    *" ${repository} "*) ;;
    *) refuse "repository '${repository}' is not allowed on this runner" ;;
  esac
fi

# One line out: the verdict ("ok" or "refuse: reason") computed from the payload.
verdict="$(python3 - "${event_path}" "${event_name}" "${repository}" "${GITHUB_REF:-}" \
  "${CI_CHECKS_ALLOW_ANY_BRANCH:-0}" <<'PY' 2>&1 || true
import json
import sys

path, event, repository, ref, any_branch = sys.argv[1:6]
try:
    with open(path, encoding="utf-8") as fh:
        payload = json.load(fh)
except (OSError, ValueError) as e:
    print(f"refuse: the event payload is not readable JSON ({e})")
    raise SystemExit(0)


def get(data, *keys):
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


if event == "pull_request":
    pr = get(payload, "pull_request")
    head = get(pr, "head", "repo", "full_name")
    head_id, base_id = get(pr, "head", "repo", "id"), get(pr, "base", "repo", "id")
    if not isinstance(head, str):
        print("refuse: the pull request's head repository is unknown (deleted fork?)")
    elif head.lower() != repository.lower() or (
        isinstance(head_id, int) and isinstance(base_id, int) and head_id != base_id
    ):
        print(f"refuse: pull request from the fork {head}; GPU runners only run this repository's own branches")
    else:
        print("ok")
elif event == "push":
    default = get(payload, "repository", "default_branch")
    if any_branch == "1":
        print("ok")
    elif not isinstance(default, str):
        print("refuse: the repository's default branch is unknown")
    elif ref != f"refs/heads/{default}":
        print(f"refuse: push to {ref or 'an unknown ref'}; only pushes to refs/heads/{default} may use this runner")
    else:
        print("ok")
elif event == "merge_group":
    default = get(payload, "repository", "default_branch")
    base = get(payload, "merge_group", "base_ref")
    if isinstance(default, str) and base == f"refs/heads/{default}":
        print("ok")
    else:
        print(f"refuse: merge queue of {base or 'an unknown branch'}; only the default branch's queue may use this runner")
elif event == "workflow_run":
    head = get(payload, "workflow_run", "head_repository", "full_name")
    print("ok" if isinstance(head, str) and head.lower() == repository.lower()
          else f"refuse: workflow_run triggered from {head or 'an unknown repository'}")
elif event in ("schedule", "workflow_dispatch"):
    print("ok")
elif event in ("issue_comment", "pull_request_target"):
    print(f"refuse: {event} can be triggered by anyone who can comment or fork")
else:
    print(f"refuse: event '{event}' has no rule in this hook, so it cannot be checked (the hook fails closed)")
PY
)"
[[ "${verdict}" == "ok" ]] || refuse "${verdict#refuse: }"
echo "ci-checks pre-job hook: allowed ${event_name} on ${repository} (${GITHUB_REF:-no ref})" >&2
