//! Cells to Arrow arrays, one column at a time.
//!
//! Nested columns are assembled bottom-up from their children (offsets plus a flattened child
//! array for lists and maps, one child per field for structs) rather than through Arrow's dynamic
//! builders, which would need a downcast per nesting level. Every cell has already been checked
//! against its type in `cell.rs`; a cell of another kind here is a bug, which debug builds assert
//! and release builds write as null.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, ListArray, MapArray, StringArray, StructArray,
    TimestampMillisecondArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{ArrowError, Fields};

use crate::cell::Cell;
use crate::hive_type::{self, HiveType, TIMESTAMP_TIMEZONE};

pub(crate) fn build_array(ty: &HiveType, cells: &[&Cell]) -> Result<ArrayRef, ArrowError> {
    let array: ArrayRef = match ty {
        HiveType::String { .. } => Arc::new(
            cells
                .iter()
                .map(|cell| expect_kind(cell, text(cell)))
                .collect::<StringArray>(),
        ),
        HiveType::TinyInt => Arc::new(
            integers(cells)
                .map(|v| v.and_then(|v| i8::try_from(v).ok()))
                .collect::<Int8Array>(),
        ),
        HiveType::SmallInt => Arc::new(
            integers(cells)
                .map(|v| v.and_then(|v| i16::try_from(v).ok()))
                .collect::<Int16Array>(),
        ),
        HiveType::Int => Arc::new(
            integers(cells)
                .map(|v| v.and_then(|v| i32::try_from(v).ok()))
                .collect::<Int32Array>(),
        ),
        HiveType::BigInt => Arc::new(integers(cells).collect::<Int64Array>()),
        // The range was checked in `cell.rs`; narrowing to f32 rounds as Hive's float does.
        #[allow(clippy::cast_possible_truncation)]
        HiveType::Float => Arc::new(
            floats(cells)
                .map(|v| v.map(|v| v as f32))
                .collect::<Float32Array>(),
        ),
        HiveType::Double => Arc::new(floats(cells).collect::<Float64Array>()),
        HiveType::Boolean => Arc::new(
            cells
                .iter()
                .map(|cell| {
                    expect_kind(
                        cell,
                        if let Cell::Boolean(v) = cell {
                            Some(*v)
                        } else {
                            None
                        },
                    )
                })
                .collect::<BooleanArray>(),
        ),
        HiveType::Timestamp => Arc::new(
            cells
                .iter()
                .map(|cell| {
                    expect_kind(
                        cell,
                        if let Cell::TimestampMillis(v) = cell {
                            Some(*v)
                        } else {
                            None
                        },
                    )
                })
                .collect::<TimestampMillisecondArray>()
                .with_timezone(TIMESTAMP_TIMEZONE),
        ),
        HiveType::Date => Arc::new(
            cells
                .iter()
                .map(|cell| {
                    expect_kind(
                        cell,
                        if let Cell::Date(v) = cell {
                            Some(*v)
                        } else {
                            None
                        },
                    )
                })
                .collect::<Date32Array>(),
        ),
        HiveType::Decimal { precision, scale } => Arc::new(
            cells
                .iter()
                .map(|cell| {
                    expect_kind(
                        cell,
                        if let Cell::Decimal(v) = cell {
                            Some(*v)
                        } else {
                            None
                        },
                    )
                })
                .collect::<Decimal128Array>()
                .with_precision_and_scale(*precision, *scale)?,
        ),
        HiveType::Binary => Arc::new(
            cells
                .iter()
                .map(|cell| {
                    expect_kind(
                        cell,
                        if let Cell::Bytes(v) = cell {
                            Some(v.as_slice())
                        } else {
                            None
                        },
                    )
                })
                .collect::<BinaryArray>(),
        ),
        HiveType::Array(element) => {
            let mut lengths = Vec::with_capacity(cells.len());
            let mut valid = Vec::with_capacity(cells.len());
            let mut children = Vec::new();
            for cell in cells {
                let items = expect_kind(
                    cell,
                    if let Cell::List(v) = cell {
                        Some(v)
                    } else {
                        None
                    },
                );
                lengths.push(items.map_or(0, Vec::len));
                valid.push(items.is_some());
                children.extend(items.into_iter().flatten());
            }
            Arc::new(ListArray::try_new(
                hive_type::list_element_field(element),
                OffsetBuffer::from_lengths(lengths),
                build_array(element, &children)?,
                nulls(valid),
            )?)
        }
        HiveType::Map(key_type, value_type) => {
            let mut lengths = Vec::with_capacity(cells.len());
            let mut valid = Vec::with_capacity(cells.len());
            let mut keys = Vec::new();
            let mut values = Vec::new();
            for cell in cells {
                let entries = expect_kind(
                    cell,
                    if let Cell::Map(v) = cell {
                        Some(v)
                    } else {
                        None
                    },
                );
                lengths.push(entries.map_or(0, Vec::len));
                valid.push(entries.is_some());
                for (key, value) in entries.into_iter().flatten() {
                    keys.push(key);
                    values.push(value);
                }
            }
            let entries = StructArray::try_new(
                hive_type::map_entry_fields(key_type, value_type),
                vec![
                    build_array(key_type, &keys)?,
                    build_array(value_type, &values)?,
                ],
                None,
            )?;
            Arc::new(MapArray::try_new(
                hive_type::map_entries_field(key_type, value_type),
                OffsetBuffer::from_lengths(lengths),
                entries,
                nulls(valid),
                false,
            )?)
        }
        HiveType::Struct(fields) => {
            let mut valid = Vec::with_capacity(cells.len());
            let mut columns: Vec<Vec<&Cell>> = vec![Vec::with_capacity(cells.len()); fields.len()];
            for cell in cells {
                let members = expect_kind(
                    cell,
                    if let Cell::Struct(v) = cell {
                        Some(v)
                    } else {
                        None
                    },
                );
                valid.push(members.is_some());
                for (index, column) in columns.iter_mut().enumerate() {
                    column.push(members.and_then(|m| m.get(index)).unwrap_or(&Cell::Null));
                }
            }
            let children = fields
                .iter()
                .zip(&columns)
                .map(|(field, column)| build_array(&field.ty, column))
                .collect::<Result<Vec<_>, _>>()?;
            let arrow_fields: Fields = hive_type::struct_fields(fields);
            Arc::new(StructArray::try_new(arrow_fields, children, nulls(valid))?)
        }
    };
    Ok(array)
}

/// `Some` only when some entry is null, as Arrow prefers.
fn nulls(valid: Vec<bool>) -> Option<NullBuffer> {
    if valid.iter().all(|v| *v) {
        None
    } else {
        Some(NullBuffer::from(valid))
    }
}

fn integers<'a>(cells: &'a [&'a Cell]) -> impl Iterator<Item = Option<i64>> + 'a {
    cells.iter().map(|cell| {
        expect_kind(
            cell,
            if let Cell::Integer(v) = cell {
                Some(*v)
            } else {
                None
            },
        )
    })
}

fn floats<'a>(cells: &'a [&'a Cell]) -> impl Iterator<Item = Option<f64>> + 'a {
    cells.iter().map(|cell| {
        expect_kind(
            cell,
            if let Cell::Float(v) = cell {
                Some(*v)
            } else {
                None
            },
        )
    })
}

fn text(cell: &Cell) -> Option<&str> {
    if let Cell::Text(v) = cell {
        Some(v.as_str())
    } else {
        None
    }
}

/// Passes `extracted` through, asserting in debug builds that only a null cell extracted nothing.
fn expect_kind<T>(cell: &Cell, extracted: Option<T>) -> Option<T> {
    debug_assert!(
        extracted.is_some() || *cell == Cell::Null,
        "cell {cell:?} does not match its column type"
    );
    extracted
}
