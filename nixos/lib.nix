# Pure helpers of the NixOS module, written with builtins only so that `nix-instantiate --eval`
# runs them without nixpkgs (tests/nixos.rs does).
#
#   toConfig: the module's option values to netnsctl's config, as an attribute set.
#   toTOML:   an attribute set to TOML text, with the data model of nixpkgs' `pkgs.formats.toml`:
#             attribute sets are tables, lists of attribute sets are arrays of tables, and
#             strings, integers, floats, booleans and lists of those are values. null has no
#             TOML form, so toConfig removes it first.
#
# The module writes its file with `pkgs.formats.toml` from the toConfig result; tests/nixos.rs
# checks that toTOML of the same result is a config that `netnsctl check` accepts.
let
  inherit (builtins)
    attrNames
    concatStringsSep
    filter
    foldl'
    fromJSON
    isAttrs
    isBool
    isFloat
    isInt
    isList
    isPath
    isString
    listToAttrs
    mapAttrs
    match
    replaceStrings
    toJSON
    ;

  filterAttrs =
    keep: attrs:
    listToAttrs (
      map (name: {
        inherit name;
        value = attrs.${name};
      }) (filter (name: keep name attrs.${name}) (attrNames attrs))
    );

  # A value equal to netnsctl's default for an absent key, so it can be left out of the file.
  isDefault = value: value == null || value == false || value == [ ] || value == { };

  # Removes default values recursively. Sysctl values are data, not options: `false` there
  # means "write 0" and stays, and only null ("unset") is removed. `_module` is the module
  # system's own attribute in submodule values, not config.
  prune =
    value:
    if isAttrs value then
      filterAttrs (name: v: name != "_module" && !(isDefault v)) (
        mapAttrs (
          name: v: if name == "sysctl" && isAttrs v then filterAttrs (_: x: x != null) v else prune v
        ) value
      )
    else if isList value then
      map prune value
    else
      value;

  # Module option values to the netnsctl config: namespaces and bridges keep their (possibly
  # empty) tables, everything below them loses its defaults.
  toConfig =
    cfg:
    filterAttrs (_: v: v != { }) {
      namespaces = mapAttrs (_: prune) (cfg.namespaces or { });
      bridges = mapAttrs (_: prune) (cfg.bridges or { });
    };

  isTableArray = value: isList value && value != [ ] && foldl' (all: x: all && isAttrs x) true value;

  # Control characters that a TOML literal string cannot hold: U+0001 to U+001F except tab and
  # newline, and U+007F. U+0000 cannot occur in a Nix string.
  controlCodes = [ "01" "02" "03" "04" "05" "06" "07" "08" "0b" "0c" "0d" "0e" "0f" "10" "11" "12" "13" "14" "15" "16" "17" "18" "19" "1a" "1b" "1c" "1d" "1e" "1f" "7f" ];
  controls = map (code: fromJSON "\"\\u00${code}\"") controlCodes;
  escapedControls = map (code: "\\u00${code}") controlCodes;

  hasControl = text: replaceStrings controls (map (_: "") controls) text != text;

  # A basic string with JSON's escapes, which TOML shares. JSON leaves U+007F as is, and TOML
  # needs it escaped.
  basicString = text: replaceStrings controls escapedControls (toJSON text);

  tripleQuote = "'''";

  # Multi-line text as a literal string, which keeps it readable. Text that a literal string
  # cannot hold as is becomes a basic string.
  formatString =
    text:
    if
      match ".*\n.*" text != null
      && match ".*\r.*" text == null
      && match ".*${tripleQuote}.*" text == null
      && match ".*'" text == null
      && !(hasControl text)
    then
      tripleQuote + "\n" + text + tripleQuote
    else
      basicString text;

  formatKey = key: if match "[A-Za-z0-9_-]+" key != null then key else basicString key;

  formatPath = path: concatStringsSep "." (map formatKey path);

  formatValue =
    path: value:
    if isString value then
      formatString value
    else if isBool value then
      (if value then "true" else "false")
    else if isInt value || isFloat value then
      toJSON value
    else if isPath value then
      basicString (toString value)
    else if isList value then
      "[" + concatStringsSep ", " (map (formatValue path) value) + "]"
    else if isAttrs value then
      "{ "
      + concatStringsSep ", " (
        map (k: "${formatKey k} = ${formatValue (path ++ [ k ]) value.${k}}") (attrNames value)
      )
      + " }"
    else
      throw "toTOML: ${formatPath path} has no TOML form (null or a function): remove it or give it a value";

  # Renders the table at `path`: its plain keys under a header, then sub-tables, then arrays
  # of tables. `header` is the header line, null for the document root. A table with only
  # sub-tables needs no header of its own, but an array element always does.
  renderTable =
    header: forceHeader: path: table:
    let
      names = attrNames table;
      plain = filter (k: !(isAttrs table.${k}) && !(isTableArray table.${k})) names;
      tables = filter (k: isAttrs table.${k}) names;
      tableArrays = filter (k: isTableArray table.${k}) names;
      needsHeader =
        header != null && (forceHeader || plain != [ ] || (tables == [ ] && tableArrays == [ ]));
      lines =
        (if needsHeader then [ header ] else [ ])
        ++ map (k: "${formatKey k} = ${formatValue (path ++ [ k ]) table.${k}}") plain;
      block = if lines == [ ] then "" else concatStringsSep "\n" lines + "\n";
      subTables = map (
        k: renderTable "[${formatPath (path ++ [ k ])}]" false (path ++ [ k ]) table.${k}
      ) tables;
      arrays = map (
        k:
        concatStringsSep "\n" (
          map (
            element: renderTable "[[${formatPath (path ++ [ k ])}]]" true (path ++ [ k ]) element
          ) table.${k}
        )
      ) tableArrays;
      parts = filter (part: part != "") ([ block ] ++ subTables ++ arrays);
    in
    concatStringsSep "\n" parts;

  toTOML = attrs: renderTable null false [ ] attrs;
in
{
  inherit
    prune
    toConfig
    toTOML
    formatString
    ;
}
