"""Inline TeX math made readable as plain text: `\\(T_w = i\\hbar t\\)` becomes `T_w = iℏt`.

arXiv titles and abstracts carry math as TeX between `\\( \\)`, `$ $`, `\\[ \\]` or `$$ $$`. Shown
as it is, a reader sees the delimiters and the commands. Here the delimiters go, the commands with
a safe Unicode form become it (Greek letters, relations, arrows, ℝ, super- and subscripts made only
of characters Unicode has), styling commands keep their text, and everything else stays TeX source,
which a reader of papers reads. Text outside math is never changed. Helper module: no business
logic; the views apply it to titles, snippets and abstracts, so email, text part, feeds and
archive agree.
"""

from __future__ import annotations

import re
from functools import lru_cache

# \( \), \[ \], $$ $$, and $ $ as TeX writers use it: no space just inside, and not a price
# ("costs $5 and $10": the closing $ is followed by a digit, or the opening by a space).
_MATH = re.compile(
    r"\\\((?P<a>.+?)\\\)|\\\[(?P<b>.+?)\\\]|\$\$(?P<c>[^$]+?)\$\$"
    r"|(?<![\\$\w])\$(?P<d>[^\s$](?:[^$]*?[^\s$\\])?)\$(?![\w$])",
    re.DOTALL,
)
_SYMBOLS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "vartheta": "ϑ", "iota": "ι", "kappa": "κ",
    "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ",
    "tau": "τ", "upsilon": "υ", "phi": "φ", "varphi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω",
    "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ", "Pi": "Π", "Sigma": "Σ",
    "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω", "hbar": "ℏ", "ell": "ℓ", "infty": "∞", "partial": "∂",
    "nabla": "∇", "leq": "≤", "le": "≤", "geq": "≥", "ge": "≥", "neq": "≠", "ne": "≠",
    "approx": "≈", "sim": "∼", "simeq": "≃", "equiv": "≡", "propto": "∝", "ll": "≪", "gg": "≫",
    "to": "→", "rightarrow": "→", "leftarrow": "←", "leftrightarrow": "↔", "Rightarrow": "⇒",
    "Leftrightarrow": "⇔", "mapsto": "↦", "in": "∈", "notin": "∉", "subset": "⊂",
    "subseteq": "⊆", "cup": "∪", "cap": "∩", "times": "×", "cdot": "·", "pm": "±", "mp": "∓",
    "sum": "∑", "prod": "∏", "int": "∫", "sqrt": "√", "ldots": "…", "cdots": "⋯", "dots": "…",
    "forall": "∀", "exists": "∃", "neg": "¬", "land": "∧", "wedge": "∧", "lor": "∨", "vee": "∨",
    "oplus": "⊕", "otimes": "⊗", "circ": "∘", "prime": "′", "emptyset": "∅", "langle": "⟨",
    "rangle": "⟩", "star": "⋆", "ast": "∗", "log": "log", "exp": "exp", "sin": "sin", "cos": "cos",
    "max": "max", "min": "min", "lim": "lim", "arg": "arg", "det": "det", "dim": "dim",
}  # fmt: skip
_SPACING = {",": " ", ";": " ", ":": " ", "!": "", "quad": " ", "qquad": " ", " ": " ",
            "left": "", "right": "", "big": "", "Big": "", "{": "{", "}": "}", "%": "%",
            "&": "&", "_": "_", "#": "#", "$": "$"}  # fmt: skip
_STYLE = ("text", "textrm", "textit", "textbf", "mathrm", "mathit", "mathbf", "mathsf", "mathtt",
          "mathcal", "mathscr", "mathfrak", "boldsymbol", "bm", "operatorname", "emph", "mbox")  # fmt: skip
_BLACKBOARD = {"R": "ℝ", "N": "ℕ", "Z": "ℤ", "Q": "ℚ", "C": "ℂ", "P": "ℙ"}
_SUPER = dict(zip("0123456789+-=()nia", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱᵃ", strict=True))
_SUB = dict(zip("0123456789+-=()aeioruvx", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑᵢₒᵣᵤᵥₓ", strict=True))

_GROUP = r"\{([^{}]*)\}"
_STYLED = re.compile(r"\\(?:" + "|".join(_STYLE) + r")\s*" + _GROUP)
_BB = re.compile(r"\\mathbb\s*\{([A-Za-z])\}")
_FRAC = re.compile(r"\\[dt]?frac\s*" + _GROUP + r"\s*" + _GROUP)
_SCRIPT = re.compile(r"([\^_])(?:" + _GROUP + r"|([A-Za-z0-9]))")
_COMMAND = re.compile(r"\\([A-Za-z]+|[^A-Za-z])")
_SPACES = re.compile(r"\s+")


def _script(m: re.Match[str]) -> str:
    mark, body = m.group(1), m.group(2) if m.group(2) is not None else m.group(3)
    table = _SUPER if mark == "^" else _SUB
    if body and all(c in table for c in body):
        return "".join(table[c] for c in body)
    return m.group(0)  # no Unicode form for every character: the TeX stays


def _frac(m: re.Match[str]) -> str:
    parts = (_COMMAND.sub(_command, p).strip() for p in (m.group(1), m.group(2)))
    top, bottom = (p if len(p) <= 1 else f"({p})" for p in parts)
    return f"{top}/{bottom}"


def _command(m: re.Match[str]) -> str:
    name = m.group(1)
    if name in _SYMBOLS:
        return _SYMBOLS[name]
    return _SPACING.get(name, m.group(0))  # unknown: left as TeX source


@lru_cache(maxsize=4096)
def math_text(tex: str) -> str:
    """One formula (without its delimiters) as readable text."""
    text = _BB.sub(lambda m: _BLACKBOARD.get(m.group(1), m.group(1)), tex)
    for _ in range(3):  # nested \text{\mathbf{x}}, \frac{\frac{a}{b}}{c}
        text = _FRAC.sub(_frac, _STYLED.sub(r"\1", text))
    text = _SCRIPT.sub(_script, text)
    text = _COMMAND.sub(_command, text)
    text = re.sub(r"(?<![\^_])\{([^{}]*)\}", r"\1", text)  # grouping braces no script needs
    return _SPACES.sub(" ", text).strip()


def simplify_math(text: str) -> str:
    """`text` with every inline or display formula made readable (`math_text`), delimiters gone."""
    if "$" not in text and "\\(" not in text and "\\[" not in text:
        return text
    return _MATH.sub(lambda m: math_text(next(g for g in m.groups() if g is not None)), text)
