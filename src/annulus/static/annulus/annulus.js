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
