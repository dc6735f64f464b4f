# Sourced by the end-to-end scripts that check what each group moved (not a test itself).

# Prints the summary lines of LOG whose bytes per training iteration differ from the theory
# rank 0 prints beside them, and fails when there are any.
bytes_differ() {
  local line bad=""
  while read -r line; do
    [[ $line =~ :\ ([0-9]+)\ bytes\ per\ iteration.*\;\ in\ theory\ ([0-9]+)$ &&
       ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" ]] || bad+="bytes differ from theory: $line; "
  done < <(grep -E '^> (tp|sp|pp|dp|sdp) group ' "$1")
  echo "$bad"
  [[ -z $bad ]]
}
