# shellcheck shell=bash
# Installing what a script needs, the same way everywhere. Sourced (bash) by the
# scripts of scripts/ (test.sh, acceptance.sh, console.sh, fuzz.sh, postgres.sh)
# and, through bench/lib.sh, by the benchmarks:
#
#   source scripts/lib/install.sh
#   install_missing SPEC...      installs, in one apt-get run, the Debian package
#                                of each SPEC whose command is missing. A SPEC is
#                                PACKAGE (its command has its name) or
#                                PACKAGE=COMMAND[|COMMAND...] (present when any of
#                                them is; a path is tested as an executable file),
#                                e.g. `install_missing nodejs=node curl time=/usr/bin/time`
#   apt_install PACKAGE...       installs those packages (apt-get install -y -qq,
#                                noninteractive), as root or else through sudo;
#                                `apt-get update` runs once a run, even across the
#                                scripts a run starts (APT_UPDATED is exported)
#   npm_ci DIR                   `npm ci` in DIR, quietly, unless `npm test` runs us
#                                there and DIR/node_modules exists (npm has the
#                                packages in hand then)
#   venv_make DIR                a Python venv at DIR unless it has one; installs
#                                python3-venv when Debian's python3 cannot make one
#   venv_requirements DIR FILE   a venv at DIR holding the pinned requirements of
#                                FILE, made again whenever FILE changes (a SHA-256
#                                stamp in DIR)
#
# What is installed is announced by install_note, which prints "installing: …"
# unless the caller defined its own before sourcing this file (bench/lib.sh does).

declare -F install_note >/dev/null || install_note() { echo "installing: $*"; }

apt_install() {
  [[ $# -gt 0 ]] || return 0
  local sudo=()
  install_note "$@"
  if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "need root (or sudo) to apt-get install $*" >&2
      return 1
    fi
    sudo=(sudo)
  fi
  if [[ -z "${APT_UPDATED:-}" ]]; then
    "${sudo[@]}" apt-get update -qq
    export APT_UPDATED=1
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# True when the command of a SPEC (see above) is present.
install_present() {
  local spec="$1" cmd cmds
  if [[ "$spec" == *=* ]]; then cmds="${spec#*=}"; else cmds="$spec"; fi
  IFS='|' read -r -a cmds <<<"$cmds"
  for cmd in "${cmds[@]}"; do
    if [[ "$cmd" == */* ]]; then
      [[ -x "$cmd" ]] && return 0
    else
      command -v "$cmd" >/dev/null 2>&1 && return 0
    fi
  done
  return 1
}

install_missing() {
  local spec missing=()
  for spec in "$@"; do
    install_present "$spec" || missing+=("${spec%%=*}")
  done
  apt_install "${missing[@]}"
}

npm_ci() {
  local dir="$1"
  if [[ -z "${npm_lifecycle_event:-}" || ! -d "$dir/node_modules" ]]; then
    (cd "$dir" && npm ci --silent --no-audit --no-fund >/dev/null)
  fi
}

venv_make() {
  local dir="$1"
  [[ -x "$dir/bin/python" ]] && return 0
  if ! python3 -m venv "$dir" >/dev/null 2>&1; then
    # Debian's python3 has no venv (ensurepip) without python3-venv.
    rm -rf "$dir"
    apt_install python3-venv
    python3 -m venv "$dir"
  fi
}

venv_requirements() {
  local dir="$1" file="$2" stamp want
  stamp="$dir/.requirements.sha256"
  want="$(sha256sum "$file" | cut -d' ' -f1)"
  if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
    rm -rf "$dir"
    venv_make "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$file"
    echo "$want" >"$stamp"
  fi
}
