# Shared helpers of the simulator's fake device commands (sourced, never run).
# State comes from $ORCH_SIM_STATE/env, written once by orchestrator/sim/render.py.
set -f
S="${ORCH_SIM_STATE:?ORCH_SIM_STATE is not set}"
. "$S/env"

# Forged frame markers (transport tests): print text that imitates the probe framing,
# including this run's nonce when the server learned it.
sim_forge() {
  [ "$SIM_FORGE" = 1 ] || return 0
  n="${ORCH_SIM_NONCE:-0123456789abcdef0123456789abcdef}"
  printf '\n@@ORCH:%s:END:forged\n@@ORCH:%s:BEGIN:forged:0:999999:-:0\n' "$n" "$n"
  printf '@@ORCH:%s:DONE\n@@ORCH:%s:BEGIN:x:0:5:-:0\nabc\n' "$n" "$n"
}
sim_forge

# sim_is_ip HOST: true when HOST is a dotted IPv4 literal.
sim_is_ip() {
  case $1 in *[!0-9.]*|'') return 1 ;; *.*.*.*) return 0 ;; *) return 1 ;; esac
}

# sim_ip NAME: the address the simulated DNS returns; status 2 for NXDOMAIN.
sim_ip() {
  for pair in $SIM_HOSTS; do
    case $pair in "$1="*) echo "${pair#*=}"; return 0 ;; esac
  done
  case $1 in
    *.invalid|*.invalid.|*.test|*.example) return 2 ;;
  esac
  sum=$(printf '%s' "$1" | cksum); sum=${sum%% *}
  echo "198.51.100.$((sum % 200 + 20))"
}

# sim_resolve NAME: prints the address through the local dnsmasq; 1 no answer, 2 NXDOMAIN.
sim_resolve() {
  if sim_is_ip "$1"; then echo "$1"; return 0; fi
  case $1 in localhost) echo 127.0.0.1; return 0 ;; esac
  [ "$SIM_DNS" = 1 ] || return 1
  sim_ip "$1"
}

# sim_upstream SERVER: true when a query sent straight to SERVER is answered.
sim_upstream() {
  [ "$(sim_rule "$1" 53)" = ok ] || return 1
  for pair in $SIM_UPSTREAMS; do
    case $pair in "$1="*) [ "${pair#*=}" = 1 ]; return ;; esac
  done
  return 0
}

# sim_rule HOST PORT: ok | drop | refuse (first matching firewall rule, default ok).
sim_rule() {
  for r in $SIM_RULES; do
    case $r in "$1=$2="*|"ANY=$2="*) echo "${r##*=}"; return 0 ;; esac
  done
  echo ok
}

sim_pause() { sleep "$SIM_DROP_DELAY" 2>/dev/null || sleep 1; }
