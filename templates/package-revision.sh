# bootstrap_package_revision PACKAGE VERSION: prints the repository's revision of PACKAGE
# for the upstream VERSION (1.34.2 -> 1.34.2-1.1). The revision is the repository's
# business, so it is read from `apt-cache madison`, never guessed. When the repository
# does not offer VERSION it says which repository and what it offers, and fails.
bootstrap_package_revision() {
  _bs_rev=$(apt-cache madison "$1" | awk -v want="$2" '{ split($3, a, "-"); if (a[1] == want) { print $3; exit } }')
  if [ -z "$_bs_rev" ]; then
    echo "$1 $2 is not in the package repository ($(sed 's/^deb //' /etc/apt/sources.list.d/kubernetes.list)); apt-cache madison $1 offers:" >&2
    apt-cache madison "$1" | awk '{ print "  " $3 }' >&2
    return 1
  fi
  printf '%s\n' "$_bs_rev"
}
