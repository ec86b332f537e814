"""Plain-text tables for reports (`str()` of the report classes)."""


def table(header, rows, footer=None, right=()):
    """Lines of a table with columns as wide as their widest cell.

    `rows` (and `footer`, set off by rules) are sequences of strings, one per column of
    `header`; columns whose index is in `right` are right-aligned (numbers).
    """
    every = [header, *rows] + ([footer] if footer else [])
    widths = [max(len(row[i]) for row in every) for i in range(len(header))]

    def line(row):
        cells = (c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths)))
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(header))
    lines = [line(header), rule, *(line(row) for row in rows)]
    if footer:
        lines += [rule, line(footer)]
    return lines
