// Behaviour that would otherwise sit in event-handler attributes, which the Content-Security-Policy
// forbids: a <select data-submit-on-change> submits its form when changed (the language switch), a
// <button data-print> prints the page.
document.addEventListener("change", function (event) {
  var el = event.target;
  if (el.matches && el.matches("select[data-submit-on-change]") && el.form) {
    el.form.submit();
  }
});
document.addEventListener("click", function (event) {
  var el = event.target.closest ? event.target.closest("[data-print]") : null;
  if (el) {
    event.preventDefault();
    window.print();
  }
});

// Participant self-entry (/p/...): one question per screen with a progress bar, the VAS as a
// 0-100 line with no mark until touched, and the answers kept in localStorage (keyed by the link)
// until they are sent, so that a dropped connection or a reload loses nothing.
(function () {
  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }
  ready(function () {
    var done = document.querySelector("[data-selfentry-clear]");
    if (done) {
      try { window.localStorage.removeItem(done.getAttribute("data-selfentry-clear")); } catch (e) { /* private mode */ }
    }
    var form = document.querySelector("form[data-selfentry]");
    if (!form) { return; }
    var key = form.getAttribute("data-selfentry");
    document.body.classList.add("js-enhanced");
    function load() {
      try { return JSON.parse(window.localStorage.getItem(key) || "{}") || {}; } catch (e) { return {}; }
    }
    function save() {
      var data = {};
      form.querySelectorAll("input[type=radio]:checked, input[type=number]").forEach(function (el) {
        if (el.value !== "") { data[el.name] = el.value; }
      });
      try { window.localStorage.setItem(key, JSON.stringify(data)); } catch (e) { /* storage full or off */ }
    }
    // the VAS: the range has no name (never sent); touching it writes the millimetres to the field
    form.querySelectorAll("input[data-vas-for]").forEach(function (range) {
      var field = form.querySelector("input[name='" + range.getAttribute("data-vas-for") + "']");
      var state = range.parentNode.querySelector("[data-vas-state]");
      range.hidden = false;
      if (field.value !== "") { range.value = field.value; range.setAttribute("aria-valuetext", (range.getAttribute("data-valuetext") || "{n} / 100").replace("{n}", field.value)); } else { range.classList.add("untouched"); if (state) { state.hidden = false; } }
      function mark() {
        range.classList.remove("untouched");
        field.value = range.value;
        range.setAttribute("aria-valuetext", (range.getAttribute("data-valuetext") || "{n} / 100").replace("{n}", range.value));
        if (state) { state.hidden = true; }
        save();
      }
      range.addEventListener("input", mark);
      range.addEventListener("change", mark);
      range.addEventListener("pointerdown", function () { window.setTimeout(mark, 0); });
    });
    // answers kept from before a reload (the server's own answers, after an error, win)
    var kept = load();
    Object.keys(kept).forEach(function (name) {
      var fields = form.querySelectorAll("[name='" + name.replace(/'/g, "") + "']");
      if (!fields.length) { return; }
      if (fields[0].type === "radio") {
        if (!form.querySelector("[name='" + name + "']:checked")) {
          fields.forEach(function (f) { if (f.value === kept[name]) { f.checked = true; } });
        }
      } else if (fields[0].value === "") {
        fields[0].value = kept[name];
        var range = form.querySelector("input[data-vas-for='" + name + "']");
        if (range) { range.value = kept[name]; range.classList.remove("untouched");
          range.setAttribute("aria-valuetext", (range.getAttribute("data-valuetext") || "{n} / 100").replace("{n}", kept[name]));
          var st = range.parentNode.querySelector("[data-vas-state]"); if (st) { st.hidden = true; } }
      }
    });
    form.addEventListener("change", save);
    // one question per screen
    var steps = Array.prototype.slice.call(form.querySelectorAll("[data-step]"));
    var bar = form.querySelector("[data-step-progress]");
    var text = form.querySelector("[data-step-text]");
    var total = steps.length - 1;
    var current = 0;
    var firstError = steps.findIndex(function (s) { return s.classList.contains("has-error"); });
    function show(i, focus) {
      current = Math.max(0, Math.min(i, steps.length - 1));
      steps.forEach(function (s, n) { s.hidden = n !== current; });
      if (bar) { bar.value = current; }
      if (text) {
        var pattern = current < total ? text.getAttribute("data-text-step") : text.getAttribute("data-text-final");
        text.textContent = (pattern || "{n} / {total}").replace("{n}", current + 1).replace("{total}", total);
      }
      var summary = steps[current].querySelector("[data-step-summary]");
      if (summary) {
        var names = {}, answered = 0;
        form.querySelectorAll("input[type=radio], input[type=number]").forEach(function (el) { names[el.name] = true; });
        Object.keys(names).forEach(function (name) {
          var el = form.querySelector("[name='" + name + "']");
          if (el.type === "radio" ? form.querySelector("[name='" + name + "']:checked") : el.value !== "") { answered += 1; }
        });
        summary.textContent = summary.getAttribute("data-text").replace("{answered}", answered).replace("{total}", total);
        summary.hidden = false;
      }
      var legend = steps[current].querySelector("legend, h2") || steps[current].querySelector("p");
      if (legend && focus) { legend.setAttribute("tabindex", "-1"); legend.focus({preventScroll: true}); }
      window.scrollTo(0, 0);
    }
    steps.forEach(function (s) {
      s.querySelectorAll(".step-nav, [data-step-back]").forEach(function (nav) { nav.hidden = false; });
    });
    if (steps.length) { steps[0].querySelectorAll("[data-step-back]").forEach(function (b) { b.hidden = true; }); }
    form.addEventListener("click", function (event) {
      if (event.target.closest("[data-step-next]")) { event.preventDefault(); show(current + 1, true); }
      else if (event.target.closest("[data-step-back]")) { event.preventDefault(); show(current - 1, true); }
    });
    show(firstError >= 0 ? firstError : 0);
  });
})();
