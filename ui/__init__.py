"""The Streamlit app (协调员 · 基金 · 数据 · 运行记录): pages wire widgets to planning/ calls."""
