# Shared by campushub's scripts: messages, and installing what is missing from Debian.
# Source it after setting NAME (the prefix of messages): NAME=engine; . scripts/lib.sh

say() { printf '%s: %s\n' "${NAME:-campushub}" "$*" >&2; }
die() { say "$*"; exit 1; }

# apt_install PACKAGE...: install the Debian packages that are not installed yet (needs root)
apt_install() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "please install these Debian packages first: ${missing[*]}"
  say "installing ${missing[*]} from Debian"
  apt-get update -qq
  # the downloaded .deb files are not kept: the test suite's installs alone would leave hundreds of MB
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o APT::Keep-Downloaded-Packages=false "${missing[@]}" >/dev/null
}

# account_env ACCOUNT: set AS_ACCOUNT to the command prefix that runs a program as ACCOUNT with
# what a login would give it (HOME, XDG_RUNTIME_DIR), as rootless Podman needs:
#   account_env jupyter; "${AS_ACCOUNT[@]}" podman ps
account_env() {
  local uid
  uid=$(id -u "$1") || die "there is no account '$1' (create it: useradd --create-home $1)"
  AS_ACCOUNT=(setpriv "--reuid=$uid" "--regid=$(id -g "$1")" --init-groups
              env "HOME=$(getent passwd "$1" | cut -d: -f6)" "USER=$1" "XDG_RUNTIME_DIR=/run/user/$uid")
}
