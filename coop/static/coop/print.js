// Print buttons: <button type="button" data-print>. A file rather than onclick="window.print()"
// because the Content-Security-Policy allows no inline script.
document.addEventListener("click", function (event) {
  if (event.target.closest("[data-print]")) {
    window.print();
  }
});
